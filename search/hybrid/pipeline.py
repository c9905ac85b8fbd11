"""The hybrid pipeline: how a words and/or photo query becomes ranked product ids, on every engine.

Text:        BM25  +  kNN(text vector)  +  kNN(fused vector: words vs. photos and text)
Photo:       kNN(image vector)  +  kNN(fused vector)  (+ shoppers' photo references)
Photo+text:  ``SEARCH_COMPOSE="facets"`` (default): the photo ranks, the words narrow
             (:mod:`search.hybrid.compose`); ``"fused"``: all of the above, the fused query
             mixing both sides like a product's vector.

Stages, each in its own module, under one :class:`~search.hybrid.rule.HybridRule`:

1. **retrieve** (:mod:`search.hybrid.retrieve`): the query's lists, in one round trip where the
   engine has multi-search;
2. **fuse** (:mod:`search.hybrid.fusion`): RRF or linear over the full lists;
   (with ``SEARCH_ADAPTIVE_WEIGHTS``, :mod:`search.hybrid.adaptive` first sets the kNN weights
   of this query from BM25's list);
3. **membership** (:mod:`search.hybrid.floor`): kNN hits under the floor and BM25 hits under
   the match cut-off (term coverage) are not matches, and a query has at most ``rule.window`` matches; order is untouched;
4. **re-rank** (:func:`rerank`): a LambdaMART model over the first matches, when
   ``SEARCH_RERANKER_DIR`` names one (:mod:`search.hybrid.rerank`; off by default);
5. **click prior** (:mod:`search.hybrid.click_prior`): clicks reorder, within rank caps.

Stages 1-3 run inside the engine instead when it can run the same rule exactly
(:mod:`search.hybrid.compile` decides; never with a kNN floor); the results are the same ids in
the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings

from mlmodels.types import ImageFeatures
from search.backends.base import BaseSearchBackend, FusedResult, Hit, SearchFilters, ServerFusionUnavailable
from search.clicks import selectors as click_selectors
from search.embedding import encoding
from search.embedding.encoding import QueryVectors
from search.hybrid import compose
from search.hybrid.adaptive import adaptive_weights
from search.hybrid.click_prior import apply_click_prior, click_prior_scale
from search.hybrid.compile import compile_rule, why_not_compiled
from search.hybrid.floor import exact_ids, knn_best, matched_ids
from search.hybrid.fusion import exact_boost, fuse
from search.hybrid.language import MULTILINGUAL_KNN, TRANSLATED, is_other_script, language_weights
from search.hybrid.rerank import candidate_features, load_reranker
from search.hybrid.retrieve import query_retrievals, retrieve
from search.hybrid.retrievers import BM25, CLICKS, IMAGE_KNN, PHOTO_REFS_KNN, blend_weights
from search.hybrid.rule import HybridRule, hybrid_rule
from search.translation import translate_query

logger = logging.getLogger(__name__)

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
    #: The query's exact matches in the whole catalog (:func:`exact_match_count`), for a filtered words query.
    exact_count: int | None = None
    #: The photo alone in the live index's fusion space, for a composed photo+words query
    #: (``SEARCH_COMPOSE="facets"``, :mod:`search.hybrid.compose`); ``None`` otherwise.
    photo_alone: np.ndarray | None = None


def query_prepare(
    *, backend: BaseSearchBackend, text: str, image: ImageFeatures | None, filters: SearchFilters, weights: dict[str, float] | None,
    method: str | None = None,
) -> HybridQuery | None:
    """Encode the query and settle its weights; ``None`` when browsing (no words, no photo).

    Args:
        backend: the engine the query will run on (its live index decides the fusion space).
        text: cleaned query text, or "" for a photo-only query or browsing.
        image: features ``(1, 1280)`` and logits ``(1, 1000)`` of the query photo, or ``None``.
        filters: the search's filters; a filtered query needs its unfiltered best cosines.
        weights: per-request weights laid over the settings (:func:`blend_weights`).
        method: the fusion method (default ``SEARCH_FUSION``).

    Returns:
        The encoded query, or ``None`` when there are neither words nor a photo.
    """
    if not text and image is None:
        return None
    vectors = encoding.query_vectors(text or None, image, backend=backend)
    photo_alone = None
    if text and image is not None and settings.SEARCH_COMPOSE == "facets":
        photo_alone = encoding.query_vectors(None, image, backend=backend).fused  # None: no space matches the index
    query = hybrid_query(backend=backend, text=text, vectors=vectors, photo=image is not None, filters=filters, weights=weights,
                         method=method, compose=photo_alone is not None)
    return replace(query, photo_alone=photo_alone)


def hybrid_query(
    *, backend: BaseSearchBackend, text: str, vectors: QueryVectors, photo: bool, filters: SearchFilters,
    weights: dict[str, float] | None = None, method: str | None = None, compose: bool = False,
) -> HybridQuery:
    """A query from vectors already made: its weights (:func:`blend_weights`) and, for a filtered
    query, its best cosines in the whole catalog (:func:`search.hybrid.floor.knn_best`).

    Args:
        backend, text, filters, weights, method: as :func:`query_prepare`.
        vectors: the query's vectors (``encoding.query_vectors``).
        photo: the query has a photo (its weights differ with a trained fusion head).
        compose: the query will be composed (:mod:`search.hybrid.compose`): no best cosines needed.
    """
    weights = blend_weights(space=vectors.space, photo=photo, overrides=weights)
    rule = hybrid_rule(method=method, weights=weights)
    best = None if filters.is_empty or compose else knn_best(backend, vectors, rule.knn_min_ratio)
    exact = exact_match_count(backend, text, rule) if text and not photo and not filters.is_empty else None
    return HybridQuery(text=text, vectors=vectors, weights=weights, best=best, exact_count=exact)


def exact_match_count(backend: BaseSearchBackend, text: str, rule: HybridRule) -> int | None:
    """How many of the unfiltered BM25 window's hits are exact matches (:func:`search.hybrid.floor.exact_ids`):
    a filtered query's kNN-only gates read this, so a filter never admits a product the unfiltered
    query left out. ``None`` when the rule has no such gate or the engine reports no term
    coverage (then no exact match is known and nothing is gated: nothing to ask).

    Raises:
        search.backends.base.SearchUnavailable: the engine cannot answer.
    """
    if not backend.reports_term_coverage or (not rule.exact_enough and not any(rule.knn_only_min_cosine.values())):
        return None
    return len(exact_ids({BM25: backend.search_text(text, limit=rule.window)}, known=True))


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
    rule = hybrid_rule(method=method, weights=query.weights)
    retrievals = [r for r in query_retrievals(text=query.text, vectors=query.vectors, filters=filters, window=rule.window,
                                                   served=backend.served_vector_fields(), translated=query_translation(backend, query.text))
                  if rule.weight(r.name) != 0]
    # -- click feedback: shoppers' photos as extra references (search.clicks.selectors) --
    refs: list[Hit] = []
    if query.vectors.image is not None and rule.weight(PHOTO_REFS_KNN):
        refs = click_selectors.photo_refs_ranking(query.vectors.image, filters=filters, k=rule.window)
    photo = query.vectors.image is not None
    if backend.supports_server_fusion and not settings.SEARCH_RERANKER_DIR:  # the re-ranker reads every list's scores
        # Asked before it answers: only a multilingual kNN or a translation in the query can stand for a query in another script.
        multilingual = [r.name for r in retrievals if r.name in (*MULTILINGUAL_KNN, *TRANSLATED)]
        rule = replace(rule, weights=language_weights(query.text, rule.weights, answered=multilingual, photo=photo))
        reason = why_not_compiled(rule, retrievals, backend.fusion_support(), extra_lists=bool(refs))
        if reason is None:
            try:
                return rerank(backend.search_fused(compile_rule(rule, retrievals)), query=query)
            except ServerFusionUnavailable as exc:  # a fallback engine answers the lists; fuse them here
                logger.warning("Fusing here: the engine cannot fuse now (%s)", exc)
        else:
            logger.debug("Fusing here: %s", reason)
    rankings = {r.name: hits for r, hits in zip(retrievals, retrieve(backend, retrievals), strict=True)}
    if refs:
        rankings[PHOTO_REFS_KNN] = refs
    rule = replace(rule, weights=language_weights(query.text, rule.weights, answered=[n for n, hits in rankings.items() if hits], photo=photo))
    fused = rankings_fuse(rankings, rule, best=None if filters.is_empty else query.best, text=query.text,
                          exact_count=None if filters.is_empty else query.exact_count)
    return rerank(fused, query=query, rankings=rankings)


def query_translation(backend: BaseSearchBackend, text: str) -> str:
    """The English words of ``text``'s dictionary translation for ``bm25_translated``
    (:func:`search.translation.translate_query`, with the engine's vocabulary choosing among a
    Hindi word's sound-alikes); "" for English words, a photo-only query, or translation off.

    Raises:
        search.backends.base.SearchUnavailable: the engine cannot answer.
    """
    if not text or settings.SEARCH_QUERY_TRANSLATION == "off" or not is_other_script(text):
        return ""
    return translate_query(text, known=backend.known_words)


def rankings_fuse(
    rankings: dict[str, list[Hit]], rule: HybridRule, *, best: dict[str, float] | None = None, text: str = "",
    exact_count: int | None = None,
) -> list[FusedResult]:
    """Stages 2-3 over fetched lists: rank fusion of the full lists (with query-adaptive weights
    when the rule says so) and the exact-match boost, then membership (the kNN floor, the match
    cut-off, the kNN-only gates and the window); the scores and order of the matches are those of the fusion.

    Args:
        rankings: retriever -> hits, best first.
        rule: the query's rule.
        best: the query's best cosine per vector field in the whole catalog, for a filtered
            query (see :func:`search.hybrid.floor.matched_ids`); unfiltered lists supply their own.
        text: the query text (query-adaptive weights read it).
        exact_count: the query's exact matches in the whole catalog, for a filtered query (:func:`exact_match_count`).
    """
    if rule.adaptive:
        rule = replace(rule, weights=adaptive_weights(text, rankings, rule.weights))
    matched = matched_ids(rankings, best=best, ratios=rule.knn_min_ratio, weights=rule.weights, min_coverage=rule.min_coverage,
                          exact_enough=rule.exact_enough, knn_only_min_cosine=rule.knn_only_min_cosine, exact_count=exact_count)
    fused = fuse(rankings, rule)
    if rule.exact_boost and rule.weight(BM25) != 0:
        fused = exact_boost(fused, exact_ids(rankings), boost=rule.exact_boost, scale=click_prior_scale(rule.method, rule.rrf_k))
    return [r for r in fused if r.id in matched][: rule.window]


def rerank(fused: list[FusedResult], *, query: HybridQuery, rankings: dict[str, list[Hit]] | None = None) -> list[FusedResult]:
    """Stage 4: reorder the first matches with the learned re-ranker of ``SEARCH_RERANKER_DIR``
    (:mod:`search.hybrid.rerank`); unchanged when none is set (the default) or for a photo-only query.

    Args:
        fused: stage 3's matches, best first.
        query: the query (its words are features).
        rankings: the retriever lists (BM25's term coverage is a feature); ``None`` reads 0.

    Raises:
        search.hybrid.rerank.ArtefactError: the folder holds no usable model.
    """
    folder = settings.SEARCH_RERANKER_DIR
    if not folder or not query.text or len(fused) < 2:
        return fused
    model = load_reranker(str(folder))
    priors = click_selectors.click_priors(text=query.text, product_ids=[r.id for r in fused[: model.k]])
    X = candidate_features(query.text, fused, rankings=rankings, priors=priors, k=model.k)
    return model.rerank(fused, X)


def click_prior_apply(fused: list[FusedResult], *, text: str, weights: dict[str, float], method: str) -> list[FusedResult]:
    """Stage 5: the click prior, with its weight and the rank caps (``search.clicks.click_model``); order only, never membership.

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
    return click_prior_weigh(fused, priors, weight=weights[CLICKS], method=method)


def click_prior_weigh(fused: list[FusedResult], priors: Mapping[int, float], *, weight: float, method: str) -> list[FusedResult]:
    """:func:`~search.hybrid.click_prior.apply_click_prior` with the storefront's scale (``method``,
    ``SEARCH_RRF_K``) and rank caps (``CLICK_MAX_LIFT_RANKS`` / ``CLICK_MAX_DROP_RANKS``).

    Args:
        fused: results best first.
        priors: product id -> click prior in [0, 1] (0.5: no evidence).
        weight: the prior's weight (``SEARCH_WEIGHTS["clicks"]``).
        method: the fusion method the scores came from.
    """
    return apply_click_prior(
        fused, priors, weight=weight, scale=click_prior_scale(method, settings.SEARCH_RRF_K),
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
    """Run every retriever a query calls for (stage 1); the lists :func:`rankings_blend` fuses.

    The relevance harness (``search.evaluation``) calls this too, so what it measures is what
    the storefront ranks.

    Args:
        backend: the engine to ask.
        text: cleaned query text ("" for a photo-only query).
        vectors: the query's vectors (``encoding.query_vectors``); ``vectors.image`` set for a photo.
        filters: applied inside every retriever.
        candidates: hits per retriever (default ``SEARCH_CANDIDATES``).

    Returns:
        Retriever name (``bm25``, ``text_knn``, ``image_knn``, ``fused_knn``...; ``bm25_translated``
        for a Chinese or Hindi query with a translation) -> hits, best first.
    """
    retrievals = query_retrievals(text=text, vectors=vectors, filters=filters, window=candidates or settings.SEARCH_CANDIDATES,
                                  served=backend.served_vector_fields(), translated=query_translation(backend, text))
    return {r.name: hits for r, hits in zip(retrievals, retrieve(backend, retrievals), strict=True)}


def rankings_blend(
    rankings: dict[str, list[Hit]],
    *,
    method: str | None = None,
    weights: dict[str, float] | None = None,
    rrf_k: int | None = None,
    best: dict[str, float] | None = None,
    knn_min_ratio: dict[str, float] | None = None,
    min_coverage: float | None = None,
    adaptive: bool | None = None,
    text: str = "",
    exact_boost: float | None = None,
    exact_enough: int | None = None,
    knn_only_min_cosine: dict[str, float] | None = None,
) -> list[FusedResult]:
    """Fuse retriever lists the storefront's way (:func:`rankings_fuse` under :func:`~search.hybrid.rule.hybrid_rule`).

    Args:
        rankings: output of :func:`search_rankings`.
        method: ``rrf`` or ``linear`` (default ``SEARCH_FUSION``).
        weights: per-retriever weights laid over ``SEARCH_WEIGHTS``.
        rrf_k: RRF constant (default ``SEARCH_RRF_K``).
        best: the query's best cosine per vector field in the whole catalog, for a filtered query.
        knn_min_ratio: kNN floors laid over ``SEARCH_KNN_MIN_RATIO``.
        min_coverage: the BM25 match cut-off (default ``SEARCH_MATCH_MIN_COVERAGE``).
        adaptive: query-adaptive weights (default ``SEARCH_ADAPTIVE_WEIGHTS``).
        exact_boost: the exact-match boost (default ``SEARCH_EXACT_MATCH_BOOST``).
        exact_enough: exact matches that leave kNN-only hits out (default ``SEARCH_EXACT_ENOUGH``).
        knn_only_min_cosine: floors of kNN-only hits (default ``SEARCH_KNN_ONLY_MIN_COSINE``).
        text: the query's words: query-adaptive weights read them, and the weights follow their
            script (:func:`search.hybrid.language.language_weights`: a query with no Latin letter
            leans on BM25 and the multilingual kNN when they answered). "" leaves the weights as given.

    Raises:
        ValueError: unknown method, ``rrf_k`` not positive, or ``min_coverage`` outside [0, 1].
    """
    rule = hybrid_rule(method=method, weights=weights, rrf_k=rrf_k, knn_min_ratio=knn_min_ratio, min_coverage=min_coverage, adaptive=adaptive,
                       exact_boost=exact_boost, exact_enough=exact_enough, knn_only_min_cosine=knn_only_min_cosine)
    if text:
        rule = replace(rule, weights=language_weights(text, rule.weights, answered=[n for n, hits in rankings.items() if hits],
                                                      photo=IMAGE_KNN in rankings))
    return rankings_fuse(rankings, rule, best=best, text=text)
