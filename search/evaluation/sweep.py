"""Fusion settings from data: grid-search the blend on a dev half of the queries, report the test half.

The queries are split once with a fixed seed. Every candidate setting (fusion method, RRF k,
retriever weights) is scored on the dev half only; the best one by dev nDCG@10 is then scored on
the test half, next to the current settings' test score. No choice ever looks at a test query.
"""

from __future__ import annotations

import itertools
import random

from django.conf import settings

from search.backends.base import Hit
from search.evaluation.datasets import SEED
from search.evaluation.metrics import METRICS, evaluate_run
from search.hybrid.pipeline import rankings_blend

#: RRF constants tried (60 is Cormack et al.'s default; small k trusts the top ranks more).
RRF_KS = (10, 30, 60, 100)
#: Weights tried per retriever; only ratios matter, so grids that are multiples collapse. With
#: three retrievers this grid is 37 distinct weightings x 5 methods = 185 settings, each one blend per dev
#: query (~2 minutes on CrowdFlower on 2 busy cores); a finer grid did not pay for its time.
WEIGHTS = (0.0, 0.5, 1.0, 2.0)
OBJECTIVE = "ndcg@10"
RUN_DEPTH = 100


def split_queries(qids: list[str], seed: int = SEED) -> tuple[list[str], list[str]]:
    """Seeded half/half split of the query ids: ``(dev, test)``."""
    order = sorted(qids)
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


def candidate_settings(retrievers: list[str], *, weights: tuple[float, ...] = WEIGHTS, rrf_ks: tuple[int, ...] = RRF_KS) -> list[dict]:
    """Every (method, rrf_k, weights) to try for these retrievers, duplicates by ratio removed."""
    seen, out = set(), []
    for combo in itertools.product(weights, repeat=len(retrievers)):
        top = max(combo)
        if top == 0:
            continue
        ratio = tuple(round(w / top, 4) for w in combo)
        if ratio in seen:
            continue
        seen.add(ratio)
        setting = dict(zip(retrievers, combo, strict=True))
        out += [{"method": "rrf", "rrf_k": k, "weights": setting} for k in rrf_ks]
        out.append({"method": "linear", "rrf_k": None, "weights": setting})
    return out


def _score(qrels, rankings, qids, setting, metrics) -> dict[str, float]:
    run = {q: [r.id for r in rankings_blend(rankings[q], method=setting["method"], weights=setting["weights"],
                                            rrf_k=setting["rrf_k"])[:RUN_DEPTH]] for q in qids}
    return evaluate_run({q: qrels[q] for q in qids}, run, metrics)


def sweep_blend(
    qrels: dict[str, dict[int, float]],
    rankings: dict[str, dict[str, list[Hit]]],
    *,
    metrics: list[str] | None = None,
    weights: tuple[float, ...] = WEIGHTS,
    rrf_ks: tuple[int, ...] = RRF_KS,
    current: dict[str, float] | None = None,
) -> dict:
    """Grid-search ``rankings_blend`` settings on the dev half; score the winner on the test half.

    Args:
        qrels: query id -> product id -> gain.
        rankings: query id -> retriever -> hits (``search_rankings`` output, computed once).
        metrics: reported metrics (default nDCG@10, MRR@10, recall@100); the objective is nDCG@10.
        weights, rrf_ks: the grid (defaults :data:`WEIGHTS`, :data:`RRF_KS`).
        current: the weights the storefront uses for these queries (default ``SEARCH_WEIGHTS``),
            reported beside the chosen setting.

    Returns:
        ``{"dev_queries", "test_queries", "tried", "chosen": {method, rrf_k, weights},
        "chosen_dev", "chosen_test", "default": {...}, "default_dev", "default_test"}``.
    """
    metrics = list(metrics or METRICS)
    qids = [q for q in rankings if any(g > 0 for g in qrels.get(q, {}).values())]
    dev, test = split_queries(qids)
    retrievers = sorted({name for r in rankings.values() for name, hits in r.items() if hits})
    best, best_score, tried = None, -1.0, 0
    for setting in candidate_settings(retrievers, weights=weights, rrf_ks=rrf_ks):
        score = _score(qrels, rankings, dev, setting, [OBJECTIVE])[OBJECTIVE]
        tried += 1
        if score > best_score + 1e-12:
            best, best_score = setting, score
    default = {"method": settings.SEARCH_FUSION, "rrf_k": settings.SEARCH_RRF_K,
               "weights": {r: (current or settings.SEARCH_WEIGHTS).get(r, 1.0) for r in retrievers}}
    return {
        "objective": f"{OBJECTIVE} on the dev half", "dev_queries": len(dev), "test_queries": len(test), "tried": tried,
        "chosen": best,
        "chosen_dev": _score(qrels, rankings, dev, best, metrics),
        "chosen_test": _score(qrels, rankings, test, best, metrics),
        "default": default,
        "default_dev": _score(qrels, rankings, dev, default, metrics),
        "default_test": _score(qrels, rankings, test, default, metrics),
    }
