"""Turn request parameters (storefront, API, command line) into one validated search.

All three front doors go through :func:`parse_search_request`, so a query behaves the same
everywhere and every bad input gets the same clear reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings

from mlmodels.images import ImageRejected, open_image
from mlmodels.types import DECODE_FIT, ImageFeatures
from search.backends import get_backend
from search.backends.base import SearchFilters
from search.embedding import encoding
from search.hybrid.fusion import FUSION_METHODS
from search.params import flag, whole_number
from search.query import QueryRejected, clean_query
from search.selectors import SORTS, SearchPage, product_search
from shop.selectors import category_exists
from shop.uploads import photo_limits

#: Deepest page served; beyond it results are noise and crawlers loop.
MAX_PAGE = 200
MAX_PRICE = 10_000_000


class SearchRequestError(ValueError):
    """Bad search input; ``reason`` is shown to the shopper (HTTP 400)."""

    def __init__(self, reason: str, field: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass
class SearchRequest:
    text: str
    image: ImageFeatures | None
    filters: SearchFilters
    sort: str = "relevance"
    page: int = 1
    per_page: int = 24
    method: str | None = None
    notices: list[str] = field(default_factory=list)
    #: Replace misspelt words (``autocorrect=false`` in the URL: search the words as typed).
    autocorrect: bool = True

    def run(self) -> SearchPage:
        page = product_search(
            text=self.text, image=self.image, filters=self.filters, sort=self.sort,
            page=self.page, per_page=self.per_page, method=self.method, autocorrect=self.autocorrect,
        )
        page.notices = self.notices + page.notices
        if not page.total and self.filters.category and not category_exists(self.filters.category):  # asked only when nothing was found
            page.notices.append(f"There is no category “{self.filters.category[:100]}”, so nothing is in it. Categories are written "
                                "root first, e.g. “Home Furnishing > Bath Linen”; pick one from the category facet.")
        return page


def _get(params: Mapping, key: str) -> str:
    value = params.get(key, "")
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value or "").strip()


def _getlist(params: Mapping, key: str) -> list[str]:
    if hasattr(params, "getlist"):
        values = params.getlist(key)
    else:
        value = params.get(key) or []
        values = value if isinstance(value, (list, tuple)) else [value]
    return [str(v).strip() for v in values if str(v).strip()]


def _price(params: Mapping, key: str) -> float | None:
    raw = _get(params, key)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SearchRequestError(f"{key.replace('_', ' ').capitalize()} must be a number, got {raw[:20]!r}.", key) from None
    if not math.isfinite(value) or value < 0 or value > MAX_PRICE:
        raise SearchRequestError(f"{key.replace('_', ' ').capitalize()} must be between 0 and {MAX_PRICE:,}.", key)
    return value


def decode_query_photo(data: bytes) -> ImageFeatures:
    """Decode and encode a shopper's photo. Raises SearchRequestError with the reason it was refused."""
    try:
        decoded = open_image(data, **photo_limits(), fit=DECODE_FIT)
    except ImageRejected as exc:
        raise SearchRequestError(exc.reason, "image") from None
    return encoding.encode_image_query(decoded)


def parse_search_request(
    params: Mapping, *, image_bytes: bytes | None = None, image: ImageFeatures | None = None, per_page: int | None = None
) -> SearchRequest:
    """Validate ``q``, ``category``, ``brand`` (repeatable), ``price_min``, ``price_max``, ``sort``,
    ``page``, ``fusion`` and ``autocorrect``, and decode the photo if one came.

    Raises:
        SearchRequestError: any parameter is unusable; the reason says which and why.
    """
    if len(set(_getlist(params, "category"))) > 1:
        raise SearchRequestError("Choose one category at a time (a category includes everything below it).", "category")
    if image_bytes is not None:
        image = decode_query_photo(image_bytes)
    filters = SearchFilters(
        category=_get(params, "category")[:1000] or None,
        brands=tuple(b[:200] for b in _getlist(params, "brand")[:20]),
        price_min=_price(params, "price_min"),
        price_max=_price(params, "price_max"),
    )
    if filters.price_min is not None and filters.price_max is not None and filters.price_min > filters.price_max:
        raise SearchRequestError("The minimum price is above the maximum price.", "price_min")
    sort = _get(params, "sort") or "relevance"
    if sort not in SORTS:
        raise SearchRequestError(f"Unknown sort {sort[:30]!r}; choose one of {', '.join(SORTS)}.", "sort")
    page = whole_number(_get(params, "page") or "1", minimum=1, maximum=MAX_PAGE)
    if page is None:
        raise SearchRequestError(f"Page must be a whole number from 1 to {MAX_PAGE}.", "page")
    method = _get(params, "fusion") or None
    if method is not None and method not in FUSION_METHODS:
        raise SearchRequestError(f"Unknown fusion {method[:30]!r}; choose one of {', '.join(FUSION_METHODS)}.", "fusion")
    autocorrect = flag(_get(params, "autocorrect") or "true")
    if autocorrect is None:
        raise SearchRequestError("autocorrect must be true or false.", "autocorrect")
    backend = get_backend()
    terms = backend.terms if backend.supports_term_analysis else None
    try:
        cleaned = clean_query(_get(params, "q"), has_image=image is not None, has_filters=not filters.is_empty, terms=terms)
    except QueryRejected as exc:
        raise SearchRequestError(exc.reason, "q") from None
    return SearchRequest(
        text=cleaned.text, image=image, filters=filters, sort=sort, page=page,
        per_page=per_page or settings.SEARCH_PAGE_SIZE, method=method, notices=list(cleaned.notices), autocorrect=autocorrect,
    )
