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
from search.hybrid.retrievers import KNN_FIELDS, TEXT_KNN
from search.lexical import lexical_plan, plan_apply
from shop.models import Category, Product, ProductImage

SORTS = ("relevance", "price_asc", "price_desc", "rating")
#: What the results of a page are (``SearchPage.match``): products holding the words ("text"),
#: products close in meaning only, none holding a word ("similar"), nothing ("none"), products
#: like a photo ("photo"), or a listing by filters alone ("browse").
MATCH_KINDS = ("text", "similar", "none", "photo", "browse")


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
    #: The words as typed, and the words searched instead when a typo was corrected.
    typed_query: str = ""
    corrected_query: str | None = None
    #: A correction found but not applied (``autocorrect=False``).
    suggestion: str | None = None
    match: str = "text"

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
    autocorrect: bool = True,
) -> SearchPage:
    """Search the catalog by words, a photo, or both, with filters, sorting and paging.

    The words go through :func:`search.lexical.lexical_plan` first: a query with a word no
    product holds is corrected (``corrected_query``), products carrying a typed identifier are
    listed first, and a words-only query that no product holds every word of (not even corrected)
    shows at most ``SEARCH_SIMILAR_LIMIT`` products close in meaning (``match`` "similar") if the
    best is at least ``SEARCH_SIMILAR_MIN_COSINE`` alike, else nothing (``match`` "none").

    Args:
        text: cleaned query text (see ``search.query.clean_query``); may be empty with a photo or filters.
        image: features of the query photo, ``(1, 1280)`` + logits ``(1, 1000)``.
        filters: category / brand / price filters (applied inside every retriever).
        sort: one of :data:`SORTS`.
        page: 1-based page; pages past the end are empty.
        method, weights: override ``SEARCH_FUSION`` / ``SEARCH_WEIGHTS`` (experiments).
        autocorrect: replace misspelt words (``False``: search the words as typed and report
            the correction as ``suggestion``; the page's "Search instead for").

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

    plan = lexical_plan(backend, text, filters=filters, autocorrect=autocorrect) if text else None
    words = plan.text if plan is not None else text
    query = query_prepare(backend=backend, text=words, image=image, filters=filters, weights=weights, method=method)
    fused = ranked_matches(backend=backend, query=query, filters=filters, method=method)
    if query is not None:
        fused = click_prior_apply(fused, text=words, weights=query.weights, method=method)
    match = "browse" if query is None else ("photo" if image is not None else "text")
    if plan is not None:
        best = (query.best or {}).get(KNN_FIELDS[TEXT_KNN]) if query is not None and not filters.is_empty else None
        fused, lexical_match = plan_apply(
            fused, plan, photo=image is not None, min_cosine=settings.SEARCH_SIMILAR_MIN_COSINE, text_knn=TEXT_KNN, best=best,
            limit=settings.SEARCH_SIMILAR_LIMIT)
        match = match if lexical_match == "text" else lexical_match
    ids = [r.id for r in fused]
    facets = _facets(ids, filters)
    if filters.brands and match != "none":  # disjunctive brand facet: every brand the query finds, so a second can be added
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
        took_ms=(time.perf_counter() - started) * 1000, method=method, typed_query=text,
        corrected_query=plan.corrected if plan else None, suggestion=plan.suggestion if plan else None, match=match,
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
