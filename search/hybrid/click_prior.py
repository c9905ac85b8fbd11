"""The click prior: shoppers' clicks lift or lower products in a fused ranking, within rank caps.

The prior per product comes from :mod:`search.clicks.selectors` (position-bias corrected, smoothed, decayed);
here it is put on the fusion's scale and added, and :func:`cap_lift` bounds how far it moves
any product. It changes order only, never which products match.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from search.backends.base import FusedResult, ScorePart
from search.clicks.click_model import boost_from_prior


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
    (:func:`search.clicks.click_model.boost_from_prior`). ``scale`` puts the prior on the fusion's scale:
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
