"""The hybrid pipeline: how a words and/or photo query becomes ranked product ids.

Text:        BM25  +  kNN(text vector)  +  kNN(fused vector: words vs. photos and text)
Photo:       kNN(image vector)  +  kNN(fused vector)
Photo+text:  ``SEARCH_COMPOSE="facets"`` (default): the photo ranks, the words narrow
             (:mod:`search.hybrid.compose`); ``"fused"``: all of the above, the fused query
             mixing both sides like a product's vector.

1. :func:`query_prepare` encodes the query once and settles its weights
   (:func:`search.hybrid.retrievers.blend_weights`) and, when needed, its best cosines for the
   kNN floor (:func:`search.hybrid.floor.knn_best`).
2. :func:`ranked_matches` runs the retrievers (:func:`search_rankings`) and fuses them
   (:func:`rankings_blend`: rank fusion, then the floor decides membership), or lets the
   engine fuse them itself when it offers ``search_hybrid`` (Elasticsearch's retrievers) with
   the same retriever names, weights and method.
3. :func:`click_prior_apply` lets clicks reorder the matches (:mod:`search.hybrid.click_prior`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from mlmodels.types import ImageFeatures
from search.backends.base import BaseSearchBackend, FusedResult, Hit, SearchFilters
from search.clicks import selectors as click_selectors
from search.embedding import encoding
from search.embedding.encoding import QueryVectors
from search.hybrid import compose
from search.hybrid.click_prior import apply_click_prior, click_prior_scale
from search.hybrid.floor import knn_best, matched_ids
from search.hybrid.fusion import blend
from search.hybrid.retrievers import BM25, CLICKS, FUSED_KNN, IMAGE_KNN, KNN_FIELDS, PHOTO_REFS_KNN, TEXT_KNN, VECTOR_FIELDS, blend_weights

#: Most products listed when browsing by filters alone (no words, no photo).
BROWSE_LIMIT = 5000


@dataclass(frozen=True)
class HybridQuery:
    """A words and/or photo query, encoded once for every retrieval of one search."""

    text: str
    vectors: QueryVectors
    weights: dict[str, float]
    #: The best cosine per vector field without filters (``knn_best``), when a retrieval needs it.
    best: dict[str, float] | None
    #: The photo alone in the live index's fusion space, for a composed photo+words query
    #: (``SEARCH_COMPOSE="facets"``, :mod:`search.hybrid.compose`); ``None`` otherwise.
    photo_alone: np.ndarray | None = None


def query_prepare(
    *, backend: BaseSearchBackend, text: str, image: ImageFeatures | None, filters: SearchFilters, weights: dict[str, float] | None,
) -> HybridQuery | None:
    """Encode the query and settle its weights; ``None`` when browsing (no words, no photo).

    Args:
        backend: the engine the query will run on (its live index decides the fusion space).
        text: cleaned query text, or "" for a photo-only query or browsing.
        image: features ``(1, 1280)`` and logits ``(1, 1000)`` of the query photo, or ``None``.
        filters: the search's filters; a filtered query needs its unfiltered best cosines.
        weights: per-request weights laid over the settings (:func:`blend_weights`).

    Returns:
        The encoded query, or ``None`` when there are neither words nor a photo.
    """
    if not text and image is None:
        return None
    vectors = encoding.query_vectors(text or None, image, backend=backend)
    photo_alone = None
    if text and image is not None and settings.SEARCH_COMPOSE == "facets":
        photo_alone = encoding.query_vectors(None, image, backend=backend).fused  # None: no space matches the index
    needs_best = photo_alone is None and (getattr(backend, "search_hybrid", None) is not None or not filters.is_empty)
    return HybridQuery(
        text=text, vectors=vectors,
        weights=blend_weights(space=vectors.space, photo=image is not None, overrides=weights),
        best=knn_best(backend, vectors) if needs_best else None, photo_alone=photo_alone,
    )


def ranked_matches(*, backend: BaseSearchBackend, query: HybridQuery | None, filters: SearchFilters, method: str) -> list[FusedResult]:
    """Every product ``query`` matches under ``filters``, best first (browsing: by rating).

    Args:
        backend: the engine to ask.
        query: from :func:`query_prepare`; ``None`` lists products by filters alone (at most
            :data:`BROWSE_LIMIT`).
        filters: applied inside every retriever.
        method: ``rrf`` or ``linear``.

    Returns:
        Fused results (ids, scores and their parts), best first, without the click prior.

    Raises:
        ValueError: unknown fusion method.
        search.backends.base.SearchUnavailable: the engine cannot answer.
    """
    if query is None:
        hits = backend.search_text(None, filters=filters, limit=BROWSE_LIMIT)
        return [FusedResult(h.id, 0.0) for h in hits]
    if query.photo_alone is not None:  # photo + words, composed (search.hybrid.compose)
        return compose.composed_ranking(backend=backend, words=query.text, photo_vector=query.photo_alone, filters=filters).results
    vectors, weights = query.vectors, query.weights
    # -- click feedback: shoppers' photos as extra references (search.clicks.selectors) --
    refs: list[Hit] = []
    if vectors.image is not None and weights.get(PHOTO_REFS_KNN, 0):
        refs = click_selectors.photo_refs_ranking(vectors.image, filters=filters, k=settings.SEARCH_CANDIDATES)
    hybrid = getattr(backend, "search_hybrid", None)
    if hybrid is not None and not refs:  # the engine fuses BM25 and kNN itself (Elasticsearch retrievers)
        # vectors.fused is None when no loadable fusion space matches the live index
        query_vectors = {f: v for f in VECTOR_FIELDS if (v := getattr(vectors, f)) is not None}
        ratios = settings.SEARCH_KNN_MIN_RATIO
        floors = {f: ratios[f] * best for f, best in (query.best or {}).items() if best > 0}
        return hybrid(
            query.text or None, query_vectors, filters=filters, k=settings.SEARCH_CANDIDATES, method=method,
            weights=weights, rrf_k=settings.SEARCH_RRF_K, min_similarity=floors or None,
        )
    # fused here: the embedded engine, or shoppers' photo references the engine does not hold
    rankings = search_rankings(backend=backend, text=query.text, vectors=vectors, filters=filters)
    if refs:
        rankings[PHOTO_REFS_KNN] = refs
    return rankings_blend(rankings, method=method, weights=weights, best=None if filters.is_empty else query.best)


def click_prior_apply(fused: list[FusedResult], *, text: str, weights: dict[str, float], method: str) -> list[FusedResult]:
    """The click prior, with its weight and the rank caps (``search.clicks.click_model``); order only, never membership.

    Args:
        fused: :func:`ranked_matches` output, best first.
        text: the query text the per-query priors are keyed by.
        weights: the query's weights; ``weights["clicks"]`` 0 (or missing) leaves ``fused`` as it is.
        method: the fusion method, which sets the prior's scale (:func:`click_prior_scale`).

    Returns:
        The same results, reordered within ``CLICK_MAX_LIFT_RANKS`` / ``CLICK_MAX_DROP_RANKS``.
    """
    if not weights.get(CLICKS, 0):
        return fused
    priors = click_selectors.click_priors(text=text, product_ids=[r.id for r in fused])
    return apply_click_prior(
        fused, priors, weight=weights[CLICKS], scale=click_prior_scale(method, settings.SEARCH_RRF_K),
        max_lift=settings.CLICK_MAX_LIFT_RANKS, max_drop=settings.CLICK_MAX_DROP_RANKS,
    )


def search_rankings(
    *,
    backend: BaseSearchBackend,
    text: str,
    vectors: QueryVectors,
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
        rankings[BM25] = backend.search_text(text, filters=filters, limit=n)
        rankings[TEXT_KNN] = backend.search_vector(KNN_FIELDS[TEXT_KNN], vectors.text, filters=filters, k=n)
    if vectors.image is not None:
        rankings[IMAGE_KNN] = backend.search_vector(KNN_FIELDS[IMAGE_KNN], vectors.image, filters=filters, k=n)
    if vectors.fused is not None:  # None: no loadable fusion space matches the live index
        rankings[FUSED_KNN] = backend.search_vector(KNN_FIELDS[FUSED_KNN], vectors.fused, filters=filters, k=n)
    return rankings


def rankings_blend(
    rankings: dict[str, list[Hit]],
    *,
    method: str | None = None,
    weights: dict[str, float] | None = None,
    rrf_k: int | None = None,
    best: dict[str, float] | None = None,
) -> list[FusedResult]:
    """Fuse retriever lists the storefront's way: ``search.hybrid.fusion.blend`` with settings as defaults.

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
    fused = blend(
        rankings,
        method=method or settings.SEARCH_FUSION,
        weights={**settings.SEARCH_WEIGHTS, **(weights or {})},
        rrf_k=rrf_k or settings.SEARCH_RRF_K,
    )
    matched = matched_ids(rankings, best=best)
    return [r for r in fused if r.id in matched]
