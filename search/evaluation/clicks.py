"""``evaluate ... --clicks N``: what learning from shoppers' clicks adds, on queries the clicks never saw.

1. The judged queries are split in two seeded halves (:func:`search.evaluation.sweep.split_queries`):
   *train* and *test*.
2. ``N`` simulated shoppers search the train half only (:func:`search.evaluation.clicklog.simulate_sessions`:
   the cascade model of ``simulate_clicks``, shown the storefront's ranking with the click prior
   as of the last refresh); their clicks are the only thing the learners read.
3. Learners: the click prior (``hybrid_clicks``: the storefront's ``ClickStat`` priors, per query
   for head queries and per product otherwise) and a LambdaMART re-ranker
   (:mod:`search.hybrid.rerank`) trained on click grades (PBM: clicks over expected
   examinations, smoothed towards the catalogue mean, as the click prior does, in 0..10) of the
   products the log shows, with (``ltr_clicks``) and without (``ltr``) the click prior as a feature.
4. Every system is scored on the test half, beside the same systems without clicks.

An ``oracle`` LambdaMART, trained on the train half's *judgments* instead of clicks, bounds what
any learner over these features could reach on the test half.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from search.backends.base import FusedResult, Hit
from search.clicks import click_model
from search.evaluation.clicklog import ClickLog, ClickPriors, ShopperConfig, apply_priors, click_priors, simulate_sessions
from search.evaluation.metrics import METRICS, evaluate_run
from search.evaluation.sweep import split_queries
from search.hybrid.pipeline import rankings_blend
from search.hybrid.rerank import Reranker, candidate_features, train_reranker

#: Matches the re-ranker reorders per query: the first page (``SEARCH_PAGE_SIZE``), the products
#: shoppers saw and clicks grade. Reordering 50 let products no shopper saw (no click prior: 0.5)
#: jump above seen-and-skipped ones (prior < 0.5): nDCG@10 0.749 against 0.818 on CrowdFlower.
RERANK_K = 24
#: Click grades 0..GRADES (``round(10 x smoothed attractiveness)``); LightGBM's label gain per grade.
GRADES = 10
LABEL_GAIN = [float(g) for g in range(GRADES + 1)]


@dataclass(frozen=True)
class ClicksConfig:
    """Knobs of :func:`evaluate_clicks`: ``sessions`` shoppers, ``seed`` for the split and the shoppers."""

    sessions: int = 3000
    seed: int = 0
    k: int = RERANK_K


def click_grades(log: ClickLog) -> dict[str, dict[int, int]]:
    """Query key -> product id -> grade 0..10 of every (query, product) the log shows.

    PBM evidence as the click prior reads it (:func:`search.clicks.click_model.aggregate`:
    decayed clicks over expected examinations, the top clicking session left out), smoothed
    towards the catalogue mean with ``CLICK_PRIOR_STRENGTH``.
    """
    imps, clicks = log.events()
    agg = click_model.aggregate(imps, clicks, half_life_days=settings.CLICK_HALF_LIFE_DAYS, eta=settings.CLICK_POSITION_ETA,
                                query_min_sessions=1)
    out: dict[str, dict[int, int]] = {}
    for (key, pid), e in agg.per_query.items():
        alpha = click_model.smoothed_attractiveness(e.clicks, e.expected, prior_mean=agg.prior_mean, strength=settings.CLICK_PRIOR_STRENGTH)
        out.setdefault(key, {})[pid] = int(round(min(1.0, max(0.0, alpha)) * GRADES))
    return out


def evaluate_clicks(
    qrels: Mapping[str, Mapping[int, float]],
    texts: Mapping[str, str],
    rankings: Mapping[str, dict[str, list[Hit]]],
    config: ClicksConfig = ClicksConfig(),
    *,
    metrics: tuple[str, ...] = METRICS,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Simulate clicks on one half, learn from them, score every system on the other half.

    Args:
        qrels: query id -> product id -> gain (only the simulated shoppers and the oracle read it).
        texts: query id -> words.
        rankings: query id -> retriever -> hits (``search_rankings``).
        config: sessions, seed, re-ranked depth.
        metrics: metric names of :func:`~search.evaluation.metrics.evaluate_run`.
        progress: one line per step.

    Returns:
        ``{"systems": name -> test-half metrics, "about": name -> line, "test": the test half's query ids,
        "clicks": facts of the log and the split}``.
    """
    say = progress or (lambda _msg: None)
    judged = sorted(q for q in rankings if any(g > 0 for g in qrels.get(q, {}).values()))
    train, test = split_queries(judged, seed=config.seed)
    fused = {q: rankings_blend(rankings[q], text=texts[q]) for q in judged}
    say(f"{config.sessions} shoppers on {len(train)} training queries")
    log = simulate_sessions(train, texts, fused, qrels, ShopperConfig(sessions=config.sessions, seed=config.seed))
    priors = click_priors(log)
    key = {q: click_model.query_key(texts[q]) for q in judged}
    with_prior = {q: apply_priors(fused[q], priors.for_query(key[q], [r.id for r in fused[q]])) for q in judged}
    grades = click_grades(log)
    say(f"training LambdaMART on the clicks of {len(grades)} queries")
    runs = {
        "bm25": {q: [h.id for h in rankings[q].get("bm25", [])] for q in judged},
        "hybrid": {q: [r.id for r in fused[q]] for q in judged},
        "hybrid_clicks": {q: [r.id for r in with_prior[q]] for q in judged},
    }
    about = {
        "bm25": "BM25 alone", "hybrid": "the storefront's ranking without clicks",
        "hybrid_clicks": "the storefront's ranking with the click prior learned from the training half's clicks",
    }
    for name, use_prior, labels in (("ltr", False, "clicks"), ("ltr_clicks", True, "clicks"), ("oracle", True, "judgments")):
        model = _train(train, texts, fused, rankings, priors, key, grades if labels == "clicks" else None, qrels,
                       k=config.k, use_prior=use_prior, seed=config.seed)
        if model is None:
            continue
        runs[name] = {q: [r.id for r in _rerank(model, q, texts, fused, rankings, priors, key, use_prior)] for q in judged}
        about[name] = (f"LambdaMART over the first {config.k} matches, trained on the training half's {labels}"
                       + (", click prior as a feature" if use_prior else ", without the click prior"))
    systems = {name: _score(qrels, run, test, metrics) for name, run in runs.items()}
    in_sample = {name: _score(qrels, run, train, metrics)["ndcg@10"] for name, run in runs.items()}
    return {
        "systems": systems, "about": about, "test": test,
        "clicks": {"sessions": config.sessions, "seed": config.seed, "train_queries": len(train), "test_queries": len(test),
                   "counted_clicks": len(log.clicks), "queries_with_grades": len(grades),
                   "train_half_ndcg@10": in_sample},
    }


def _train(train, texts, fused, rankings, priors: ClickPriors, key, grades, qrels, *, k: int, use_prior: bool, seed: int) -> Reranker | None:
    """LambdaMART on the training half: click grades of the shown products, or (``grades`` None) judgments of the first ``k``."""
    groups = []
    for q in train:
        top = fused[q][:k]
        if grades is None:
            keep = list(range(len(top)))
            y = np.array([int(qrels.get(q, {}).get(r.id, 0)) for r in top])
        else:
            g = grades.get(key[q], {})
            keep = [i for i, r in enumerate(top) if r.id in g]
            y = np.array([g[top[i].id] for i in keep])
        if len(keep) < 2:
            continue
        X = _features(q, texts, fused, rankings, priors, key, use_prior, k)[keep]
        groups.append((X, y))
    try:
        gain = LABEL_GAIN if grades is not None else [float(2 ** g - 1) for g in range(GRADES + 1)]
        return train_reranker(groups, k=k, label_gain=gain, meta={"seed": seed})
    except ValueError:
        return None


def _features(q, texts, fused, rankings, priors: ClickPriors, key, use_prior: bool, k: int) -> np.ndarray:
    top = fused[q][:k]
    found = priors.for_query(key[q], [r.id for r in top]) if use_prior else {}
    return candidate_features(texts[q], top, rankings=rankings[q], priors=found, k=k)


def _rerank(model: Reranker, q, texts, fused, rankings, priors, key, use_prior: bool) -> list[FusedResult]:
    return model.rerank(fused[q], _features(q, texts, fused, rankings, priors, key, use_prior, model.k))


def _score(qrels, run: dict[str, list[int]], qids: list[str], metrics) -> dict[str, float]:
    out = evaluate_run({q: dict(qrels[q]) for q in qids}, {q: run[q][:100] for q in qids}, list(metrics))
    out.pop("n_queries", None)
    return out
