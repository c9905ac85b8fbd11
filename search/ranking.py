"""Pure fusion functions: combine the ranked lists of several retrievers into one ranking.

The same functions rank results for the embedded engine and for client-side fusion on
Elasticsearch, so both agree. Every fused result carries an explanation of its score parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from search.backends.base import Hit

FUSION_METHODS = ("rrf", "linear")
NORMALISATIONS = ("minmax", "zscore")


@dataclass(frozen=True)
class ScorePart:
    """One retriever's contribution to a result.

    Attributes:
        retriever: e.g. ``"bm25"``, ``"text_knn"``.
        raw: the retriever's own score (BM25 score, cosine similarity).
        rank: 1-based rank in that retriever's list.
        contribution: what it added to the fused score (weight already applied).
    """

    retriever: str
    raw: float
    rank: int
    contribution: float


@dataclass
class FusedResult:
    """A result after fusion: ``score`` is the sum of ``parts``' contributions."""

    id: int
    score: float
    parts: list[ScorePart] = field(default_factory=list)

    def explain(self) -> dict:
        """``{"score": ..., "<retriever>": {"raw", "rank", "contribution"}, ...}`` for display and JSON."""
        out: dict = {"score": round(self.score, 6)}
        for p in self.parts:
            out[p.retriever] = {"raw": round(p.raw, 6), "rank": p.rank, "contribution": round(p.contribution, 6)}
        return out


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
    rankings: Mapping[str, Sequence[Hit]],
    *,
    method: str = "rrf",
    weights: Mapping[str, float] | None = None,
    rrf_k: int = 60,
    priors: Mapping[int, float] | None = None,
    max_lift: int | None = None,
    max_drop: int | None = None,
) -> list[FusedResult]:
    """Fuse ranked lists with ``method`` (``rrf`` or ``linear``); the entry point the search selector uses.

    Args:
        rankings: retriever name -> hits, best first.
        method: ``rrf`` or ``linear``.
        weights: retriever name -> weight; ``weights["clicks"]`` weighs the click prior.
        rrf_k: the RRF constant.
        priors: product id -> click prior in [0, 1] (0.5 neutral), see :func:`apply_click_prior`.
        max_lift: most ranks the click prior may lift a product (``None``: no cap).
        max_drop: most ranks it may lower one (``None``: no cap).

    Raises:
        ValueError: unknown method.
    """
    if method == "rrf":
        fused = rrf(rankings, weights=weights, k=rrf_k)
    elif method == "linear":
        fused = linear(rankings, weights=weights)
    else:
        raise ValueError(f"Unknown fusion method {method!r}; valid: {', '.join(FUSION_METHODS)}")
    if priors:
        fused = apply_click_prior(
            fused, priors, weight=float((weights or {}).get("clicks", 1.0)), scale=click_prior_scale(method, rrf_k),
            max_lift=max_lift, max_drop=max_drop,
        )
    return fused


def click_prior_scale(method: str, rrf_k: int = 60) -> float:
    """What a full click boost adds per unit of weight: ``1 / (k + 1)`` for RRF (a first place), 1 for linear fusion."""
    return 1.0 / (rrf_k + 1) if method == "rrf" else 1.0


def apply_click_prior(
    fused: Sequence[FusedResult],
    priors: Mapping[int, float],
    *,
    weight: float,
    scale: float,
    max_lift: int | None,
    max_drop: int | None = None,
) -> list[FusedResult]:
    """Add the click prior to fused results, then cap how far it lifts any product.

    ``score(d) += weight · scale · boost(d)`` with ``boost = 2 · prior - 1`` in [-1, 1]
    (:func:`search.feedback.boost_from_prior`). ``scale`` puts the prior on the fusion's scale:
    ``1 / (k + 1)`` for RRF (a full boost adds what a first place in one more list of that weight
    adds), 1 for linear fusion (normalised scores). Then no product ends more than ``max_lift``
    ranks above, nor ``max_drop`` ranks below, its rank without clicks (:func:`cap_lift`): so an
    attack can move a product at most ``max_lift + max_drop`` ranks from wherever clicks had put it.
    Products without a prior are untouched. The explanation gets a ``clicks`` part (raw = prior,
    rank = rank by prior among the candidates that have one).

    Args:
        fused: results of :func:`rrf` or :func:`linear`, best first.
        priors: product id -> prior in [0, 1].
        weight: ``SEARCH_WEIGHTS["clicks"]`` (0 turns clicks off).
        scale: see above.
        max_lift: most ranks a product may gain (``None``: uncapped).
        max_drop: most ranks a product may lose (``None``: uncapped).
    """
    from search.feedback import boost_from_prior

    base = [r.id for r in fused]
    if weight == 0 or not fused:
        return list(fused)
    by_prior = sorted((pid for pid in base if pid in priors), key=lambda pid: (-priors[pid], pid))
    prior_rank = {pid: i + 1 for i, pid in enumerate(by_prior)}
    out: dict[int, FusedResult] = {}
    for r in fused:
        parts = list(r.parts)
        score = r.score
        if r.id in priors:
            c = weight * scale * boost_from_prior(float(priors[r.id]))
            score += c
            parts.append(ScorePart("clicks", float(priors[r.id]), prior_rank[r.id], c))
        out[r.id] = FusedResult(r.id, score, parts)
    desired = sorted(out.values(), key=lambda r: (-r.score, min((p.rank for p in r.parts if p.retriever != "clicks"), default=0), r.id))
    ids = [r.id for r in desired]
    if max_lift is not None or max_drop is not None:
        ids = cap_lift(base, ids, len(base) if max_lift is None else max_lift, max_drop)
    order = ids
    return [out[i] for i in order]


def cap_lift(base: Sequence[int], desired: Sequence[int], max_lift: int, max_drop: int | None = None) -> list[int]:
    """Reorder ``desired`` as little as possible so that no id rises more than ``max_lift`` ranks (nor falls more than ``max_drop``) from ``base``.

    Greedy, position by position: an id whose base rank is ``position - max_drop`` and is not
    placed yet must go here; otherwise the next id is the first one in ``desired`` order among
    those allowed to be this high (``base_rank - max_lift <= position``). Both bounds always
    hold (the base order itself satisfies them, and at most one id falls due per position).
    O(n log n).

    Raises:
        ValueError: a negative bound, or the two lists do not hold the same ids.
    """
    import heapq

    if max_lift < 0 or (max_drop is not None and max_drop < 0):
        raise ValueError(f"Rank bounds must be >= 0, got max_lift={max_lift}, max_drop={max_drop}")
    if set(base) != set(desired) or len(base) != len(desired):
        raise ValueError("base and desired must be orderings of the same ids")
    want = {pid: i for i, pid in enumerate(desired)}
    heap: list[tuple[int, int]] = []
    placed: set[int] = set()
    out, nxt = [], 0
    for position in range(len(base)):
        while nxt < len(base) and nxt <= position + max_lift:
            heapq.heappush(heap, (want[base[nxt]], base[nxt]))
            nxt += 1
        due = base[position - max_drop] if max_drop is not None and position >= max_drop else None
        if due is not None and due not in placed:
            pick = due
        else:
            pick = heapq.heappop(heap)[1]
            while pick in placed:
                pick = heapq.heappop(heap)[1]
        placed.add(pick)
        out.append(pick)
    return out


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
