"""Reads of the search app: ``product_search`` runs a storefront query end to end.

The ranked matches come from :mod:`search.hybrid` (retrievers, the kNN floor, rank fusion,
the click prior); here they become a page: sorting, paging, facets and the product rows.
``similar_products`` serves the product page's "Looks similar".
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch

from mlmodels.types import ImageFeatures
from search.backends import get_backend
from search.backends.base import BaseSearchBackend, FusedResult, SearchFilters
from search.hybrid.pipeline import click_prior_apply, query_prepare, ranked_matches
from shop.models import Category, Product, ProductImage

SORTS = ("relevance", "price_asc", "price_desc", "rating")


@dataclass
class Facet:
    value: str
    label: str
    count: int


@dataclass
class SearchPage:
    """One page of results. ``products`` carry ``search_score`` and ``search_explain`` attributes."""

    products: list[Product]
    total: int
    page: int
    per_page: int
    facets: dict[str, list[Facet]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    took_ms: float = 0.0
    method: str = "rrf"

    @property
    def num_pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def product_search(
    *,
    text: str = "",
    image: ImageFeatures | None = None,
    filters: SearchFilters | None = None,
    sort: str = "relevance",
    page: int = 1,
    per_page: int | None = None,
    method: str | None = None,
    weights: dict[str, float] | None = None,
    backend: BaseSearchBackend | None = None,
) -> SearchPage:
    """Search the catalog by words, a photo, or both, with filters, sorting and paging.

    Args:
        text: cleaned query text (see ``search.query.clean_query``); may be empty with a photo or filters.
        image: features of the query photo, ``(1, 1280)`` + logits ``(1, 1000)``.
        filters: category / brand / price filters (applied inside every retriever).
        sort: one of :data:`SORTS`.
        page: 1-based page; pages past the end are empty.
        method, weights: override ``SEARCH_FUSION`` / ``SEARCH_WEIGHTS`` (experiments).

    Raises:
        ValueError: unknown sort or fusion method.
        search.backends.base.SearchUnavailable: the engine cannot answer.
    """
    if sort not in SORTS:
        raise ValueError(f"Unknown sort {sort!r}; valid: {', '.join(SORTS)}")
    started = time.perf_counter()
    backend = backend or get_backend()
    filters = filters or SearchFilters()
    per_page = per_page or settings.SEARCH_PAGE_SIZE
    method = method or settings.SEARCH_FUSION

    query = query_prepare(backend=backend, text=text, image=image, filters=filters, weights=weights, method=method)
    fused = ranked_matches(backend=backend, query=query, filters=filters, method=method)
    if query is not None:
        fused = click_prior_apply(fused, text=text, weights=query.weights, method=method)
    ids = [r.id for r in fused]
    facets = _facets(ids, filters)
    if filters.brands:  # disjunctive brand facet: every brand the query finds, so a second can be added
        unbranded = replace(filters, brands=())
        others = ranked_matches(backend=backend, query=query, filters=unbranded, method=method)
        facets["brand"] = _facets([r.id for r in others], unbranded)["brand"]
    ordered = _sorted_ids(fused, sort)
    start = (max(1, page) - 1) * per_page
    page_ids = ordered[start:start + per_page]
    by_id = {r.id: r for r in fused}
    rows = (
        Product.objects.filter(pk__in=page_ids)
        .select_related("brand", "category")
        .prefetch_related(Prefetch("images", queryset=ProductImage.objects.order_by("-is_primary", "position", "id")))
        .in_bulk()
    )
    products = []
    for pid in page_ids:
        p = rows.get(pid)
        if p is None:  # deleted since it was indexed
            continue
        p.search_score = by_id[pid].score
        p.search_explain = by_id[pid].explain()
        products.append(p)
    return SearchPage(
        products=products, total=len(ids), page=max(1, page), per_page=per_page, facets=facets,
        took_ms=(time.perf_counter() - started) * 1000, method=method,
    )


def similar_products(*, product: Product, limit: int = 8, backend: BaseSearchBackend | None = None) -> list[Product]:
    """"Looks similar": image kNN from the product's own photo vector, the product itself left out."""
    backend = backend or get_backend()
    vec = backend.get_vectors("image", [product.pk]).get(product.pk)
    if vec is None:
        return []
    hits = [h for h in backend.search_vector("image", vec, k=limit + 1) if h.id != product.pk][:limit]
    rows = Product.objects.filter(pk__in=[h.id for h in hits]).select_related("brand").prefetch_related("images").in_bulk()
    return [rows[h.id] for h in hits if h.id in rows]


def _sorted_ids(fused: list[FusedResult], sort: str) -> list[int]:
    ids = [r.id for r in fused]
    if sort == "relevance":
        return ids
    field_name = "rating" if sort == "rating" else "price"
    values = dict(Product.objects.filter(pk__in=ids).values_list("pk", field_name))
    present = [i for i in ids if values.get(i) is not None]
    missing = [i for i in ids if values.get(i) is None]
    present.sort(key=lambda i: values[i], reverse=sort in ("price_desc", "rating"))
    return present + missing  # products without a price or rating go last


def _facets(ids: list[int], filters: SearchFilters) -> dict[str, list[Facet]]:
    """Counts over the matching products: category one level below the current filter, brand, price band."""
    if not ids:
        return {"category": [], "brand": [], "price": []}
    rows = list(Product.objects.filter(pk__in=ids).values_list("category__path", "brand__name", "price"))
    depth = len(filters.category_parts)
    cats: Counter[str] = Counter()
    for path, _, _ in rows:
        parts = path.split(Category.PATH_SEPARATOR) if path else []
        if len(parts) > depth:
            cats[Category.PATH_SEPARATOR.join(parts[: depth + 1])] += 1
    brands = Counter(b for _, b, _ in rows if b)
    bands = settings.SEARCH_PRICE_BANDS
    prices: Counter[int] = Counter()
    for _, _, price in rows:
        if price is None:
            continue
        for i in range(len(bands) - 1):
            hi = bands[i + 1]
            if price >= Decimal(bands[i]) and (hi is None or price < Decimal(hi)):
                prices[i] += 1
                break
    price_facets = []
    for i, count in sorted(prices.items()):
        lo, hi = bands[i], bands[i + 1]
        label = f"₹{lo:,} – ₹{hi:,}" if hi is not None else f"₹{lo:,} and above"
        price_facets.append(Facet(value=f"{lo}-{'' if hi is None else hi}", label=label, count=count))
    return {
        "category": [Facet(v, v.split(Category.PATH_SEPARATOR)[-1], c) for v, c in cats.most_common(20)],
        "brand": [Facet(v, v, c) for v, c in brands.most_common(20)],
        "price": price_facets,
    }
