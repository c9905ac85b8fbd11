"""Rank fusion: pure functions that combine the ranked lists of several retrievers into one ranking.

The second stage of the pipeline (:mod:`search.hybrid.pipeline`), the same for every engine; an
engine that fuses on its side runs the same formulas (:mod:`search.hybrid.compile`). Every fused
result carries an explanation of its score parts (:class:`~search.backends.base.FusedResult`,
defined beside ``Hit`` because engines that fuse on their side return it too). Mixing a text and
an image vector into one vector is "vector fusion" and lives in :mod:`search.embedding`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from search.backends.base import FusedResult, Hit, ScorePart
from search.hybrid.retrievers import EXACT
from search.hybrid.rule import FUSION_METHODS, HybridRule

NORMALISATIONS = ("minmax", "zscore")


def rrf(rankings: Mapping[str, Sequence[Hit]], *, weights: Mapping[str, float] | None = None, k: int = 60) -> list[FusedResult]:
    """Weighted Reciprocal Rank Fusion: ``score(d) = sum_r w_r / (k + rank_r(d))``.

    Source: Cormack, Clarke and Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and
    individual Rank Learning Methods", SIGIR 2009 (k = 60). Weights as in Elasticsearch's
    weighted ``rrf`` retriever. Ties break on the best single rank, then the id.

    Args:
        rankings: retriever name -> hits, best first.
        weights: retriever name -> weight (missing = 1.0; 0 drops the retriever).
        k: the rank constant (> 0).

    Raises:
        ValueError: ``k`` is not positive.
    """
    if k <= 0:
        raise ValueError(f"RRF k must be positive, got {k}")
    return _accumulate(rankings, weights, lambda w, hits: lambda rank, hit: w / (k + rank))


def normalise(hits: Sequence[Hit], method: str = "minmax") -> dict[int, float]:
    """Scores of one retriever rescaled: ``minmax`` to [0, 1] (all equal -> 1.0), or ``zscore``.

    Raises:
        ValueError: unknown method (valid: ``minmax``, ``zscore``).
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"Unknown normalisation {method!r}; valid: {', '.join(NORMALISATIONS)}")
    if not hits:
        return {}
    scores = [h.score for h in hits]
    if method == "minmax":
        lo, hi = min(scores), max(scores)
        span = hi - lo
        return {h.id: (h.score - lo) / span if span > 0 else 1.0 for h in hits}
    mean = sum(scores) / len(scores)
    std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
    return {h.id: (h.score - mean) / std if std > 0 else 0.0 for h in hits}


def linear(
    rankings: Mapping[str, Sequence[Hit]], *, weights: Mapping[str, float] | None = None, normalisation: str = "minmax"
) -> list[FusedResult]:
    """Linear fusion: ``score(d) = sum_r w_r * norm_r(score_r(d))`` over the retrievers that found d.

    As Elasticsearch's ``linear`` retriever with ``normalizer: minmax`` (Elasticsearch docs,
    "Linear retriever"); a document a retriever did not return gets 0 from it.
    """
    def contribution(w: float, hits: Sequence[Hit]):
        norm = normalise(hits, normalisation)
        return lambda rank, hit: w * norm[hit.id]

    return _accumulate(rankings, weights, contribution)


def blend(
    rankings: Mapping[str, Sequence[Hit]], *, method: str = "rrf", weights: Mapping[str, float] | None = None, rrf_k: int = 60,
) -> list[FusedResult]:
    """Fuse ranked lists with ``method``: :func:`rrf` (with ``rrf_k``) or :func:`linear` (min-max).

    Args:
        rankings: retriever name -> hits, best first.
        method: ``rrf`` or ``linear``.
        weights: retriever name -> weight (missing: 1.0; 0 drops the retriever).
        rrf_k: the RRF constant.

    Raises:
        ValueError: unknown method.
    """
    if method == "rrf":
        return rrf(rankings, weights=weights, k=rrf_k)
    if method == "linear":
        return linear(rankings, weights=weights)
    raise ValueError(f"Unknown fusion method {method!r}; valid: {', '.join(FUSION_METHODS)}")


def fuse(rankings: Mapping[str, Sequence[Hit]], rule: HybridRule) -> list[FusedResult]:
    """The lists fused by ``rule``'s method, weights and constant (:func:`blend`)."""
    return blend(rankings, method=rule.method, weights=rule.weights, rrf_k=rule.rrf_k)


def exact_boost(fused: Sequence[FusedResult], exact: Collection[int], *, boost: float, scale: float) -> list[FusedResult]:
    """Exact matches first: each result in ``exact`` gains ``boost * scale`` (an ``exact`` score part,
    added to the results in place), then all are re-sorted as fusion sorts them.

    ``scale`` is what a first place in a list of weight 1 adds (1 for linear fusion, ``1 / (k + 1)``
    for RRF; :func:`search.hybrid.click_prior.click_prior_scale`), so ``boost`` 1 lifts a product
    holding every query term as much as topping one more list. Products holding every word of a
    query are the ones shoppers call matches; the lift is measured in README "Relevance, measured".

    Args:
        fused: fused results, best first.
        exact: ids of the exact matches (:func:`search.hybrid.floor.exact_ids`).
        boost: in units of ``scale`` (0: ``fused`` unchanged).
        scale: the fusion's unit.
    """
    if boost <= 0 or not exact:
        return list(fused)
    add = boost * scale
    for r in fused:
        if r.id in exact:
            r.score += add
            r.parts.append(ScorePart(EXACT, 1.0, 1, add))
    return sorted(fused, key=lambda r: (-r.score, min((p.rank for p in r.parts if p.retriever != EXACT), default=0), r.id))


def _accumulate(rankings: Mapping[str, Sequence[Hit]], weights: Mapping[str, float] | None, contribution) -> list[FusedResult]:
    """Sum each retriever's weighted contribution per document, recording the parts.

    ``contribution(w, hits)`` returns ``f(rank, hit) -> float`` for one retriever's list; a
    retriever with weight 0 is left out.
    """
    weights = weights or {}
    fused: dict[int, FusedResult] = {}
    for name, hits in rankings.items():
        w = float(weights.get(name, 1.0))
        if w == 0:
            continue
        score_of = contribution(w, hits)
        for rank, hit in enumerate(hits, start=1):
            r = fused.setdefault(hit.id, FusedResult(hit.id, 0.0))
            c = score_of(rank, hit)
            r.score += c
            r.parts.append(ScorePart(name, hit.score, rank, c))
    return _sorted(fused)


def _sorted(fused: dict[int, FusedResult]) -> list[FusedResult]:
    return sorted(fused.values(), key=lambda r: (-r.score, min(p.rank for p in r.parts), r.id))
