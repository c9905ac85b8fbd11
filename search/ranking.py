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
    weights = weights or {}
    fused: dict[int, FusedResult] = {}
    for name, hits in rankings.items():
        w = float(weights.get(name, 1.0))
        if w == 0:
            continue
        for rank, hit in enumerate(hits, start=1):
            r = fused.setdefault(hit.id, FusedResult(hit.id, 0.0))
            c = w / (k + rank)
            r.score += c
            r.parts.append(ScorePart(name, hit.score, rank, c))
    return _sorted(fused)


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
    weights = weights or {}
    fused: dict[int, FusedResult] = {}
    for name, hits in rankings.items():
        w = float(weights.get(name, 1.0))
        if w == 0:
            continue
        norm = normalise(hits, normalisation)
        for rank, hit in enumerate(hits, start=1):
            r = fused.setdefault(hit.id, FusedResult(hit.id, 0.0))
            c = w * norm[hit.id]
            r.score += c
            r.parts.append(ScorePart(name, hit.score, rank, c))
    return _sorted(fused)


def blend(
    rankings: Mapping[str, Sequence[Hit]], *, method: str = "rrf", weights: Mapping[str, float] | None = None, rrf_k: int = 60
) -> list[FusedResult]:
    """Fuse ranked lists with ``method`` (``rrf`` or ``linear``); the entry point the search selector uses.

    Raises:
        ValueError: unknown method.
    """
    if method == "rrf":
        return rrf(rankings, weights=weights, k=rrf_k)
    if method == "linear":
        return linear(rankings, weights=weights)
    raise ValueError(f"Unknown fusion method {method!r}; valid: {', '.join(FUSION_METHODS)}")


def _sorted(fused: dict[int, FusedResult]) -> list[FusedResult]:
    return sorted(fused.values(), key=lambda r: (-r.score, min(p.rank for p in r.parts), r.id))
