"""The hybrid rule: how one query's retriever lists become its ranked matches, on every engine.

A :class:`HybridRule` holds everything that decides a ranking besides the lists themselves: the
fusion method and its constant, each retriever's weight, the kNN floor and the window. The
pipeline (:mod:`search.hybrid.pipeline`) applies it over lists it fetched, or, when an engine
can run the very same rule on its side, compiles it into that engine's request
(:mod:`search.hybrid.compile`); both give the same ids in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings

FUSION_METHODS = ("rrf", "linear")


@dataclass(frozen=True)
class HybridRule:
    """One query's rule.

    Attributes:
        method: ``"rrf"`` or ``"linear"`` (min-max normalised scores), see :mod:`search.hybrid.fusion`.
        weights: retriever name -> weight (missing: 1.0; 0 leaves the retriever out); may hold
            ``"clicks"``, the click prior's weight, which is not a retriever.
        rrf_k: the RRF rank constant (> 0).
        window: hits each retriever contributes, and most matches a query has.
        knn_min_ratio: vector field -> the kNN floor, as a share of the query's best cosine in the
            whole catalog (0: no floor); see :mod:`search.hybrid.floor`.
        min_coverage: the match cut-off for BM25 hits: the share of the query's distinct terms a
            product must hold to be a result (0: every BM25 hit is one); see :mod:`search.hybrid.floor`.
        adaptive: scale the kNN weights per query before fusing (:mod:`search.hybrid.adaptive`).
        exact_boost: what an exact match (a BM25 hit holding every query term) adds to its fused
            score, in units of a first place in a list of weight 1 (0: nothing); see :mod:`search.hybrid.fusion`.
        exact_enough: with at least this many exact matches, kNN-only hits are not matches (0: never).
        knn_only_min_cosine: vector field -> the least cosine of a kNN-only match when some
            product is an exact match (absolute; missing or 0: none); see :mod:`search.hybrid.floor`.
    """

    method: str
    weights: Mapping[str, float]
    rrf_k: int = 60
    window: int = 200
    knn_min_ratio: Mapping[str, float] = field(default_factory=dict)
    min_coverage: float = 0.0
    adaptive: bool = False
    exact_boost: float = 0.0
    exact_enough: int = 0
    knn_only_min_cosine: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise ValueError(f"Unknown fusion method {self.method!r}; valid: {', '.join(FUSION_METHODS)}")
        if self.rrf_k <= 0:
            raise ValueError(f"RRF k must be positive, got {self.rrf_k}")
        if self.window <= 0:
            raise ValueError(f"The window must be positive, got {self.window}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"The match cut-off (term coverage) must be within [0, 1], got {self.min_coverage}")
        if self.exact_boost < 0 or self.exact_enough < 0:
            raise ValueError(f"The exact-match boost and count must be 0 or more, got {self.exact_boost} and {self.exact_enough}")

    def weight(self, retriever: str) -> float:
        """The weight of ``retriever`` (1.0 when the rule does not name it)."""
        return float(self.weights.get(retriever, 1.0))


def hybrid_rule(
    *, method: str | None = None, weights: Mapping[str, float] | None = None, rrf_k: int | None = None, window: int | None = None,
    knn_min_ratio: Mapping[str, float] | None = None, min_coverage: float | None = None, adaptive: bool | None = None,
    exact_boost: float | None = None, exact_enough: int | None = None, knn_only_min_cosine: Mapping[str, float] | None = None,
) -> HybridRule:
    """The storefront's rule: ``SEARCH_FUSION``, ``SEARCH_WEIGHTS``, ``SEARCH_RRF_K``, ``SEARCH_CANDIDATES``,
    ``SEARCH_KNN_MIN_RATIO``, ``SEARCH_MATCH_MIN_COVERAGE``, ``SEARCH_ADAPTIVE_WEIGHTS``, ``SEARCH_EXACT_MATCH_BOOST``,
    ``SEARCH_EXACT_ENOUGH`` and ``SEARCH_KNN_ONLY_MIN_COSINE``, each overridden by the argument given.

    Args:
        method: ``rrf`` or ``linear``.
        weights: laid over ``SEARCH_WEIGHTS`` (per-query weights, e.g. from
            :func:`search.hybrid.retrievers.blend_weights`, or an experiment's).
        rrf_k: the RRF constant.
        window: hits per retriever and most matches.
        knn_min_ratio: laid over ``SEARCH_KNN_MIN_RATIO`` (an experiment's floors).
        min_coverage: the match cut-off (an experiment's; 0 turns it off).
        adaptive: query-adaptive kNN weights on or off.
        exact_boost: the exact-match boost (0 turns it off).
        exact_enough: exact matches that leave kNN-only hits out (0 turns that off).
        knn_only_min_cosine: replaces ``SEARCH_KNN_ONLY_MIN_COSINE`` (``{}`` turns those floors off).

    Raises:
        ValueError: unknown method, ``rrf_k`` / ``window`` not positive, ``min_coverage`` outside [0, 1],
            or a negative exact-match boost or count.
    """
    return HybridRule(
        method=method or settings.SEARCH_FUSION,
        weights={**settings.SEARCH_WEIGHTS, **(weights or {})},
        rrf_k=rrf_k or settings.SEARCH_RRF_K,
        window=window or settings.SEARCH_CANDIDATES,
        knn_min_ratio={**settings.SEARCH_KNN_MIN_RATIO, **(knn_min_ratio or {})},
        min_coverage=settings.SEARCH_MATCH_MIN_COVERAGE if min_coverage is None else float(min_coverage),
        adaptive=settings.SEARCH_ADAPTIVE_WEIGHTS if adaptive is None else bool(adaptive),
        exact_boost=settings.SEARCH_EXACT_MATCH_BOOST if exact_boost is None else float(exact_boost),
        exact_enough=settings.SEARCH_EXACT_ENOUGH if exact_enough is None else int(exact_enough),
        knn_only_min_cosine=dict(settings.SEARCH_KNN_ONLY_MIN_COSINE if knn_only_min_cosine is None else knn_only_min_cosine),
    )
