"""Reads of the search app: ``product_search`` runs a storefront query end to end.

Text:        BM25  +  kNN(text vector)  +  kNN(fused vector: words vs. photos and text)
Photo:       kNN(image vector)  +  kNN(fused vector)
Photo+text:  all of the above, the fused query mixing both sides like a product's vector.
The lists are fused by ``ranking.blend`` (RRF or linear, weights from settings or per request),
or by the engine itself when it offers ``search_hybrid`` (Elasticsearch's retrievers) with the
same retriever names, weights and method.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch

from mlmodels.image import ImageFeatures
from search import click_selectors, ranking
from search.backends import get_backend
from search.backends.base import BaseSearchBackend, Hit, SearchFilters
from search.embedding import encoding
from shop.models import Category, Product, ProductImage

SORTS = ("relevance", "price_asc", "price_desc", "rating")
#: Most products listed when browsing by filters alone (no words, no photo).
BROWSE_LIMIT = 5000


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

    query = _query_prepare(backend=backend, text=text, image=image, filters=filters, weights=weights)
    fused = _matching(backend=backend, query=query, filters=filters, method=method)
    if query is not None:
        fused = _click_prior_apply(fused, text=text, weights=query.weights, method=method)
    ids = [r.id for r in fused]
    facets = _facets(ids, filters)
    if filters.brands:  # disjunctive brand facet: every brand the query finds, so a second can be added
        unbranded = replace(filters, brands=())
        others = _matching(backend=backend, query=query, filters=unbranded, method=method)
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


@dataclass(frozen=True)
class _Query:
    """A words and/or photo query, encoded once for every retrieval of one search."""

    text: str
    vectors: encoding.QueryVectors
    weights: dict[str, float]
    #: The best cosine per vector field without filters (``knn_best``), when a retrieval needs it.
    best: dict[str, float] | None


def _query_prepare(
    *, backend: BaseSearchBackend, text: str, image: ImageFeatures | None, filters: SearchFilters, weights: dict[str, float] | None,
) -> _Query | None:
    """Encode the query and settle its weights; ``None`` when browsing (no words, no photo)."""
    if not text and image is None:
        return None
    vectors = encoding.query_vectors(text or None, image, backend=backend)
    needs_best = getattr(backend, "search_hybrid", None) is not None or not filters.is_empty
    return _Query(
        text=text, vectors=vectors,
        weights=blend_weights(space=vectors.space, photo=image is not None, overrides=weights),
        best=knn_best(backend, vectors) if needs_best else None,
    )


def _matching(*, backend: BaseSearchBackend, query: _Query | None, filters: SearchFilters, method: str) -> list[ranking.FusedResult]:
    """Every product ``query`` matches under ``filters``, best first (browsing: by rating)."""
    if query is None:
        hits = backend.search_text(None, filters=filters, limit=BROWSE_LIMIT)
        return [ranking.FusedResult(h.id, 0.0) for h in hits]
    vectors, weights = query.vectors, query.weights
    # -- click feedback: shoppers' photos as extra references (search.click_selectors) --
    refs: list[Hit] = []
    if vectors.image is not None and weights.get("photo_refs_knn", 0):
        refs = click_selectors.photo_refs_ranking(vectors.image, filters=filters, k=settings.SEARCH_CANDIDATES)
    hybrid = getattr(backend, "search_hybrid", None)
    if hybrid is not None and not refs:  # the engine fuses BM25 and kNN itself (Elasticsearch retrievers)
        # vectors.fused is None when no loadable fusion space matches the live index
        query_vectors = {f: v for f in ("text", "image", "fused") if (v := getattr(vectors, f)) is not None}
        ratios = settings.SEARCH_KNN_MIN_RATIO
        floors = {f: ratios[f] * best for f, best in (query.best or {}).items() if best > 0}
        return hybrid(
            query.text or None, query_vectors, filters=filters, k=settings.SEARCH_CANDIDATES, method=method,
            weights=weights, rrf_k=settings.SEARCH_RRF_K, min_similarity=floors or None,
        )
    # fused here: the embedded engine, or shoppers' photo references the engine does not hold
    rankings = search_rankings(backend=backend, text=query.text, vectors=vectors, filters=filters)
    if refs:
        rankings["photo_refs_knn"] = refs
    return rankings_blend(rankings, method=method, weights=weights, best=None if filters.is_empty else query.best)


def _click_prior_apply(fused: list[ranking.FusedResult], *, text: str, weights: dict[str, float], method: str) -> list[ranking.FusedResult]:
    """The click prior, with its weight and the rank caps (``search.feedback``); order only, never membership."""
    if not weights.get("clicks", 0):
        return fused
    priors = click_selectors.click_priors(text=text, product_ids=[r.id for r in fused])
    return ranking.apply_click_prior(
        fused, priors, weight=weights["clicks"], scale=ranking.click_prior_scale(method, settings.SEARCH_RRF_K),
        max_lift=settings.CLICK_MAX_LIFT_RANKS, max_drop=settings.CLICK_MAX_DROP_RANKS,
    )


def search_rankings(
    *,
    backend: BaseSearchBackend,
    text: str,
    vectors: encoding.QueryVectors,
    filters: SearchFilters | None = None,
    candidates: int | None = None,
) -> dict[str, list[Hit]]:
    """Run every retriever a query calls for; the lists ``rankings_blend`` fuses.

    Words run BM25 and a kNN on the text vector; a photo runs a kNN on the image vector; any
    query runs a kNN on the fused vector. The relevance harness (``search.evaluation``) calls
    this too, so what it measures is what the storefront ranks.

    Args:
        backend: the engine to ask.
        text: cleaned query text ("" for a photo-only query).
        vectors: the query's vectors (``encoding.query_vectors``); ``vectors.image`` set for a photo.
        filters: applied inside every retriever.
        candidates: hits per retriever (default ``SEARCH_CANDIDATES``).

    Returns:
        Retriever name (``bm25``, ``text_knn``, ``image_knn``, ``fused_knn``) -> hits, best first.
    """
    n = candidates or settings.SEARCH_CANDIDATES
    rankings: dict[str, list[Hit]] = {}
    if text:
        rankings["bm25"] = backend.search_text(text, filters=filters, limit=n)
        rankings["text_knn"] = backend.search_vector("text", vectors.text, filters=filters, k=n)
    if vectors.image is not None:
        rankings["image_knn"] = backend.search_vector("image", vectors.image, filters=filters, k=n)
    if vectors.fused is not None:  # None: no loadable fusion space matches the live index
        rankings["fused_knn"] = backend.search_vector("fused", vectors.fused, filters=filters, k=n)
    return rankings


def blend_weights(*, space: str | None, photo: bool, overrides: dict[str, float] | None = None) -> dict[str, float]:
    """Retriever weights for one query: ``SEARCH_WEIGHTS``, then ``SEARCH_PHOTO_WEIGHTS_TRAINED_HEAD``
    for a photo query whose fused vector comes from a trained head (``space == "fusion"``), then
    ``overrides`` (per-request experiments).

    Args:
        space: ``QueryVectors.space`` (``"bridge"``, ``"fusion"`` or ``None``).
        photo: the query has a photo (photo or photo + text).
        overrides: weights laid over the rest.
    """
    head = settings.SEARCH_PHOTO_WEIGHTS_TRAINED_HEAD if photo and space == "fusion" else {}
    return {**settings.SEARCH_WEIGHTS, **head, **(overrides or {})}


def rankings_blend(
    rankings: dict[str, list[Hit]],
    *,
    method: str | None = None,
    weights: dict[str, float] | None = None,
    rrf_k: int | None = None,
    best: dict[str, float] | None = None,
) -> list[ranking.FusedResult]:
    """Fuse retriever lists the storefront's way: ``ranking.blend`` with settings as defaults.

    Args:
        rankings: output of :func:`search_rankings`.
        method: ``rrf`` or ``linear`` (default ``SEARCH_FUSION``).
        weights: per-retriever weights laid over ``SEARCH_WEIGHTS``.
        rrf_k: RRF constant (default ``SEARCH_RRF_K``).
        best: the query's best cosine per vector field in the whole catalog, for a filtered
            query (see :func:`matched_ids`); unfiltered lists supply their own.

    Only the products the query matches (:func:`matched_ids`) are returned; their scores and
    order are those of the blend over the full lists.

    Raises:
        ValueError: unknown method, or ``rrf_k`` not positive.
    """
    fused = ranking.blend(
        rankings,
        method=method or settings.SEARCH_FUSION,
        weights={**settings.SEARCH_WEIGHTS, **(weights or {})},
        rrf_k=rrf_k or settings.SEARCH_RRF_K,
    )
    matched = matched_ids(rankings, best=best)
    return [r for r in fused if r.id in matched]


#: kNN retriever -> the vector field it searches.
KNN_FIELDS = {"text_knn": "text", "image_knn": "image", "fused_knn": "fused"}


def matched_ids(rankings: dict[str, list[Hit]], *, best: dict[str, float] | None = None) -> set[int]:
    """The products a query matches: every BM25 and photo-reference hit, and the kNN hits whose
    cosine is at least ``SEARCH_KNN_MIN_RATIO[field]`` x the query's best cosine in the catalog.

    A kNN returns its ``k`` nearest products however far they are, so without a floor "shirt"
    lists routers, and a filter to a small category returns all of it. The floor is relative to
    the *unfiltered* best match (``best``, from :func:`knn_best`, for a filtered query), so a
    filter never admits a product the unfiltered query left out, and a facet's count is the
    number of results its filter opens. Ranking is untouched: the floor only decides membership.

    Args:
        rankings: retriever -> hits (``search_rankings``).
        best: vector field -> best cosine without filters; missing fields use their list's first hit.
    """
    matched: set[int] = set()
    for name, hits in rankings.items():
        vector_field = KNN_FIELDS.get(name)  # None: BM25 or photo references, every hit matches
        ratio = settings.SEARCH_KNN_MIN_RATIO.get(vector_field, 0.0) if vector_field else 0.0
        top = (best or {}).get(vector_field, hits[0].score if hits else 0.0)
        if ratio <= 0 or top <= 0:
            matched.update(h.id for h in hits)
        else:
            matched.update(h.id for h in hits if h.score >= ratio * top)
    return matched


def knn_best(backend: BaseSearchBackend, vectors: encoding.QueryVectors) -> dict[str, float]:
    """The query's best cosine per vector field in the whole catalog (one ``k=1`` kNN each, no filters)."""
    best = {}
    for vector_field in ("text", "image", "fused"):
        vector = getattr(vectors, vector_field)
        if vector is not None and settings.SEARCH_KNN_MIN_RATIO.get(vector_field, 0.0) > 0:
            hits = backend.search_vector(vector_field, vector, k=1)
            if hits:
                best[vector_field] = hits[0].score
    return best


def similar_products(*, product: Product, limit: int = 8, backend: BaseSearchBackend | None = None) -> list[Product]:
    """"Looks similar": image kNN from the product's own photo vector, the product itself left out."""
    backend = backend or get_backend()
    vec = backend.get_vectors("image", [product.pk]).get(product.pk)
    if vec is None:
        return []
    hits = [h for h in backend.search_vector("image", vec, k=limit + 1) if h.id != product.pk][:limit]
    rows = Product.objects.filter(pk__in=[h.id for h in hits]).select_related("brand").prefetch_related("images").in_bulk()
    return [rows[h.id] for h in hits if h.id in rows]


def _sorted_ids(fused: list[ranking.FusedResult], sort: str) -> list[int]:
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
