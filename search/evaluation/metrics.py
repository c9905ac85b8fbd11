"""nDCG@10, MRR@10, recall@100 (and top-k accuracy) of ranked runs, computed by ranx.

Definitions (ranx 0.3, as trec_eval):

* ``ndcg@10``: ``DCG@10 / IDCG@10`` with ``DCG@k = sum_{i<=k} gain_i / log2(i + 1)`` (linear
  gain, Järvelin and Kekäläinen, "Cumulated gain-based evaluation of IR techniques", TOIS 2002).
* ``mrr@10``: ``1 / rank`` of the first relevant result in the top 10, else 0.
* ``recall@100``: relevant results in the top 100 / relevant results judged.
* ``top1`` / ``top5``: hit rate at 1 and 5 (a relevant result in the top 1 / 5).

"Relevant" means a gain above 0. ranx stores gains as integers, so fractional gains (the mean
of conflicting judgments, e.g. 0.5) are scaled by the least common multiple of their
denominators first; nDCG with linear gain is unchanged by scaling all gains of a query.
Queries without any relevant product are left out (their nDCG is undefined) and counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

METRICS = ("ndcg@10", "mrr@10", "recall@100")
#: nDCG@10 on condensed lists (:func:`condensed_run`), reported beside the standard figure.
CONDENSED = "ndcg@10_condensed"
#: ranx's name for each metric this harness reports.
_RANX = {"ndcg@10": "ndcg@10", "mrr@10": "mrr@10", "recall@100": "recall@100", "top1": "hit_rate@1", "top5": "hit_rate@5", "precision@10": "precision@10"}


def integer_gains(judged: Mapping) -> dict[str, int]:
    """Gains of one query scaled to integers (ranx's storage), keeping their ratios.

    ``{"a": 0.5, "b": 1.0}`` -> ``{"a": 1, "b": 2}``. Gains are read to 1/1000.
    """
    fractions = {str(k): Fraction(v).limit_denominator(1000) for k, v in judged.items()}
    scale = math.lcm(*(f.denominator for f in fractions.values())) if fractions else 1
    return {k: int(f * scale) for k, f in fractions.items()}


def evaluate_run(
    qrels: Mapping[str, Mapping[int | str, float]],
    run: Mapping[str, Sequence[int | str]],
    metrics: Sequence[str] = METRICS,
) -> dict[str, float]:
    """Mean of each metric over the judged queries that have a relevant product.

    Args:
        qrels: query id -> product id -> gain (>= 0).
        run: query id -> product ids, best first (a query missing from ``run`` scores 0).
        metrics: names from :data:`METRICS` plus ``precision@10``, ``top1``, ``top5``.

    Returns:
        metric -> mean over queries, plus ``"n_queries"`` (the queries counted).

    Raises:
        ValueError: an unknown metric, or a negative gain.
    """
    per_query = evaluate_per_query(qrels, run, metrics)
    out = {m: float(np.mean(v)) if len(v) else 0.0 for m, v in per_query.items() if m != "qids"}
    out["n_queries"] = len(per_query["qids"])
    return out


def evaluate_per_query(
    qrels: Mapping[str, Mapping[int | str, float]],
    run: Mapping[str, Sequence[int | str]],
    metrics: Sequence[str] = METRICS,
) -> dict[str, list]:
    """Each metric per query: ``{"qids": [...], metric: [value per query], ...}`` (same order).

    Raises:
        ValueError: an unknown metric, or a negative gain.
    """
    from ranx import Qrels, Run, evaluate  # ranx compiles with numba on import (seconds)

    unknown = [m for m in metrics if m not in _RANX]
    if unknown:
        raise ValueError(f"Unknown metric {', '.join(unknown)}; valid: {', '.join(_RANX)}")
    judged = {}
    for qid, gains in qrels.items():
        if any(g < 0 for g in gains.values()):
            raise ValueError(f"Query {qid!r} has a negative gain; gains must be >= 0")
        if any(g > 0 for g in gains.values()):
            judged[str(qid)] = integer_gains(gains)
    if not judged:
        return {"qids": [], **{m: [] for m in metrics}}
    qids = sorted(judged)
    runs = {}
    for qid in qids:
        ranked = list(dict.fromkeys(str(d) for d in run.get(qid, ())))
        # ranx orders by score; scores that fall with the rank keep our order (ties included).
        runs[qid] = {d: float(len(ranked) - i) for i, d in enumerate(ranked)}
    if not any(runs.values()):  # nothing retrieved for any query (ranx cannot read an empty run)
        return {"qids": qids, **{m: [0.0] * len(qids) for m in metrics}}
    scores = evaluate(Qrels.from_dict({q: judged[q] for q in qids}), Run.from_dict(runs), [_RANX[m] for m in metrics],
                      return_mean=False, make_comparable=False)
    if len(metrics) == 1:
        scores = {_RANX[metrics[0]]: scores}
    return {"qids": qids, **{m: [float(x) for x in scores[_RANX[m]]] for m in metrics}}


def condensed_run(qrels: Mapping[str, Mapping[int | str, float]], run: Mapping[str, Sequence[int | str]]) -> dict[str, list]:
    """``run`` with every product not judged for its query removed, order kept.

    Scoring the condensed lists (Sakai, "Alternatives to Bpref", SIGIR 2007) treats an unjudged
    product as unknown rather than irrelevant: a set judged from one engine's pool otherwise
    penalises a system that finds products the pool never showed. A judged product of gain 0
    stays (it is known to be irrelevant).

    Args:
        qrels: query id -> product id -> gain (the judged products of each query).
        run: query id -> product ids, best first.
    """
    judged = {str(q): {str(d) for d in gains} for q, gains in qrels.items()}
    return {q: [d for d in ids if str(d) in judged.get(str(q), ())] for q, ids in run.items()}
