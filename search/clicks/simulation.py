"""Proof by simulation that clicks improve the ranking and that attacks barely move it (``manage.py simulate_clicks``).

Shoppers follow the **cascade model** (Craswell, Zoeter, Taylor and Ramsey, "An experimental
comparison of click position-bias models", WSDM 2008): they read the results page top down,
click a result with probability equal to its attractiveness and stop there, or read on. The
attractiveness of a result comes from its judged relevance like the satisfaction probability of
ERR (Chapelle, Metzler, Zhang and Grinspan, CIKM 2009): ``a = (2^g - 1) / 2^g_max`` with gain
``g = median_relevance - 1`` in 0..3, floored at :data:`search.clicks.click_model.NOISE_CLICK` (shoppers sometimes click
irrelevant results too). Note that the click model we *estimate* with is the position-based
model (:mod:`search.clicks.click_model`), not the cascade: the simulation also checks robustness to that
mismatch.

Every event goes through the real services (:func:`search.clicks.services.impression_record`,
:func:`search.clicks.services.click_record` with every guard, :func:`search.clicks.aggregates.click_aggregates_refresh`)
and every ranking through the real selector (:func:`search.selectors.product_search`) on a real
embedded index, on a simulated clock.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils import timezone

from mlmodels.types import ImageFeatures
from search.backends import get_backend
from search.clicks import aggregates, services
from search.clicks.click_model import MAX_GAIN, NOISE_CLICK, attractiveness  # noqa: F401  (the cascade shoppers; tests import them here)
from search.clicks.simulation_data import JudgedCatalog, catalog_load, catalog_reuse, grocery_photos, ndcg_at_10, photo_features, read_crowdflower
from search.hybrid.retrievers import CLICKS, FUSED_KNN, PHOTO_REFS_KNN
from search.selectors import product_search
from search.services import products_index
from shop.importers import read_catalog
from shop.models import Product
from shop.services import catalog_import

logger = logging.getLogger(__name__)

MODEL = "cascade (Craswell et al., WSDM 2008); attractiveness (2^g - 1) / 8 from CrowdFlower median relevance, floor 0.02"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
#: Text retrievers of the simulation: the CrowdFlower products have no photos, so their fused
#: vector is their text vector seen through the zero-shot bridge; it is left out (weight 0).
TEXT_WEIGHTS = {FUSED_KNN: 0.0}
NO_CLICKS = {CLICKS: 0.0, PHOTO_REFS_KNN: 0.0}
#: The address of the attack that opens a new session for each click, all from one IP.
ATTACKER_IP = "203.0.113.66"


@dataclass
class SimulationConfig:
    """Knobs of :func:`simulate`. ``sessions`` searches by simulated shoppers over ``days`` simulated days."""

    sessions: int = 3000
    seed: int = 0
    holdout: float = 0.2
    days: float = 14.0
    refresh_every: int = 250
    attack_clicks: int = 1000
    botnet_sessions: int = 20
    network_sessions: int = 110
    photo: bool = True
    eval_depth: int = 100
    query_zipf: float = 0.6


# -- the simulation ----------------------------------------------------------------------------------------------
class Simulator:
    """Runs shoppers, attacks and measurements on the catalog loaded in the current database and index."""

    def __init__(self, config: SimulationConfig, log: Callable[[str], None] = print):
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.log = log
        self.clock = timezone.now() - timedelta(days=config.days)

    def tick(self, seconds: float) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def ip(self) -> str:
        """A shopper's address, each in a /24 of its own (65,536 of them): shoppers come from many networks."""
        a, b = self.rng.integers(0, 256, size=2)
        return f"198.{a}.{b}.7"

    def ranking(self, query: str, *, depth: int, weights: dict | None = None) -> list[int]:
        page = product_search(text=query, per_page=depth, weights={**TEXT_WEIGHTS, **(weights or {})})
        return [p.pk for p in page.products]

    def refresh(self) -> aggregates.RefreshReport:
        return aggregates.click_aggregates_refresh(now=self.clock)

    def shopper_session(self, n: int, query: str, gains: dict[int, int]) -> bool:
        """One shopper: search, scan the page top down, click at most one result (cascade). Returns True on a click."""
        key, ip = f"shopper-{self.config.seed}-{n}", self.ip()
        page = product_search(text=query, weights=TEXT_WEIGHTS)
        now = self.clock
        recorded = services.impression_record(
            query=query, product_ids=[p.pk for p in page.products], session_key=key, page=1, per_page=page.per_page,
            total=page.total, user_agent=BROWSER, ip=ip, now=now,
        )
        for position, product in enumerate(page.products, start=1):
            if self.rng.random() < attractiveness(gains.get(product.pk, 0)):
                outcome = services.click_record(
                    token=recorded.token, product_id=product.pk, position=position, session_key=key,
                    user_agent=BROWSER, ip=ip, now=now + timedelta(seconds=5 + position),
                )
                return outcome.counted
        return False

    def attack(self, query: str, target: int, *, sessions: int, clicks: int, label: str, ip: str | None = None) -> dict:
        """``sessions`` sessions send ``clicks`` forged clicks in all on ``target``, as fast as the endpoint takes them;
        each from an address of its own, or all from ``ip``."""
        per_session = clicks // sessions
        counted = 0
        reasons: dict[str, int] = defaultdict(int)
        for s in range(sessions):
            key, ip_s = f"{label}-{s}", ip or self.ip()
            page_no = 1
            while True:  # the attacker pages until the target is on screen
                page = product_search(text=query, page=page_no, weights=TEXT_WEIGHTS)
                recorded = services.impression_record(
                    query=query, product_ids=[p.pk for p in page.products], session_key=key, page=page_no,
                    per_page=page.per_page, total=page.total, user_agent=BROWSER, ip=ip_s, now=self.tick(1),
                )
                ids = [p.pk for p in page.products]
                if target in ids or not ids:
                    break
                page_no += 1
            position = (page_no - 1) * page.per_page + ids.index(target) + 1
            for _ in range(per_session):
                outcome = services.click_record(
                    token=recorded.token, product_id=target, position=position, session_key=key, user_agent=BROWSER, ip=ip_s,
                    now=self.tick(0.5),
                )
                counted += outcome.counted
                reasons[outcome.reason or "counted"] += 1
        return {"counted": counted, "outcomes": dict(reasons)}


def simulate_text(sim: Simulator, catalog: JudgedCatalog, product_ids: list[int]) -> dict:
    """Shoppers on the CrowdFlower queries, nDCG@10 before and after, then the two attacks."""
    cfg, log = sim.config, sim.log
    gains = {q: {product_ids[n]: g for n, g in judged.items()} for q, judged in catalog.gains.items()}
    queries = sorted(gains)
    order = sim.rng.permutation(len(queries))
    n_hold = int(round(cfg.holdout * len(queries)))
    holdout = sorted(queries[i] for i in order[:n_hold])
    traffic = sorted(queries[i] for i in order[n_hold:])
    weights = 1.0 / np.arange(1, len(traffic) + 1) ** cfg.query_zipf
    popularity = sim.rng.permutation(len(traffic))
    probs = weights[popularity] / weights.sum()

    log("nDCG@10 before clicks ...")
    before = {q: sim.ranking(q, depth=cfg.eval_depth) for q in queries}
    step = cfg.days * 86_400 / max(1, cfg.sessions)
    clicked = 0
    started = time.perf_counter()
    for n in range(cfg.sessions):
        q = traffic[int(sim.rng.choice(len(traffic), p=probs))]
        sim.tick(step)
        clicked += sim.shopper_session(n, q, gains[q])
        if (n + 1) % cfg.refresh_every == 0:
            sim.refresh()
            log(f"  {n + 1}/{cfg.sessions} sessions, {clicked} counted clicks ({time.perf_counter() - started:.0f} s)")
    report = sim.refresh()
    after = {q: sim.ranking(q, depth=cfg.eval_depth) for q in queries}
    no_clicks = {q: sim.ranking(q, depth=cfg.eval_depth, weights=NO_CLICKS) for q in queries}
    result = {
        "ndcg_before": ndcg_at_10(gains, before),
        "ndcg_after": ndcg_at_10(gains, after),
        "ndcg_traffic_queries": {"before": ndcg_at_10(gains, {q: before[q] for q in traffic}), "after": ndcg_at_10(gains, {q: after[q] for q in traffic})},
        "ndcg_holdout_queries": {"before": ndcg_at_10(gains, {q: before[q] for q in holdout}), "after": ndcg_at_10(gains, {q: after[q] for q in holdout})},
        "ndcg_after_without_clicks": ndcg_at_10(gains, no_clicks),
        "queries": {"traffic": len(traffic), "holdout": len(holdout), "with_own_scores": report.head_queries},
        "counted_clicks": clicked,
        "prior_mean": round(report.prior_mean, 4),
    }
    log(f"nDCG@10 {result['ndcg_before']:.4f} -> {result['ndcg_after']:.4f}")
    result["attack"] = attack_text(sim, traffic, gains)
    return result


def attack_text(sim: Simulator, traffic: list[str], gains: dict[str, dict[int, int]]) -> dict:
    """Forged clicks on an irrelevant product just below the top 10 of a trafficked query: one session, then a botnet;
    and on another such query, ``network_sessions`` sessions from one IP clicking once each."""
    cfg = sim.config
    chosen = []
    for q in traffic:
        ranked = sim.ranking(q, depth=settings.SEARCH_PAGE_SIZE)
        below = [pid for pid in ranked[10:] if gains[q].get(pid) == 0]
        if below:
            chosen.append((q, below[0], ranked.index(below[0]) + 1))
            if len(chosen) == 2:
                break
    if not chosen:
        return {"single_session_rank_change": 0, "botnet_rank_change": 0, "note": "no irrelevant product below the top 10"}
    query, target, rank0 = chosen[0]

    def rank_now(query: str, target: int) -> int:
        ranked = sim.ranking(query, depth=cfg.eval_depth)
        return ranked.index(target) + 1 if target in ranked else cfg.eval_depth + 1

    out = {}
    if len(chosen) == 2:
        q2, t2, r2 = chosen[1]
        page_before = sim.ranking(q2, depth=settings.SEARCH_PAGE_SIZE)
        network = sim.attack(q2, t2, sessions=cfg.network_sessions, clicks=cfg.network_sessions, label="one-network", ip=ATTACKER_IP)
        sim.refresh()
        page_after = sim.ranking(q2, depth=settings.SEARCH_PAGE_SIZE)
        out = {"one_network": {
            "query": q2, "target_rank_before": r2, "target_rank_change": r2 - rank_now(q2, t2), **network,
            "first_page_ranks_changed": sum(a != b for a, b in zip(page_before, page_after, strict=False)),
        }}
        sim.log(f"attack on {q2!r}: {cfg.network_sessions} sessions from one IP, {out['one_network']['first_page_ranks_changed']} "
                f"ranks of the first page changed, target {r2} -> {rank_now(q2, t2)}")
    single = sim.attack(query, target, sessions=1, clicks=cfg.attack_clicks, label="attacker")
    sim.refresh()
    rank1 = rank_now(query, target)
    botnet = sim.attack(query, target, sessions=cfg.botnet_sessions, clicks=cfg.attack_clicks, label="botnet")
    sim.refresh()
    rank2 = rank_now(query, target)
    sim.log(f"attack on {query!r}: rank {rank0} -> {rank1} (one session) -> {rank2} (botnet)")
    return {
        "query": query, "target_rank_before": rank0,
        "single_session_rank_change": rank0 - rank1, "single_session": single,
        "botnet_rank_change": rank1 - rank2, "botnet": botnet, "botnet_total_rank_change": rank0 - rank2,
        **out,
        "bound": (f"clicks move a product at most {settings.CLICK_MAX_LIFT_RANKS} ranks up and {settings.CLICK_MAX_DROP_RANKS} down "
                  "from its rank without clicks"),
    }


def simulate_photos(sim: Simulator, text_product_ids: list[int]) -> dict:
    """Grocery: val top-1 of photo search, before and after shoppers' train photos each end in a click on their product."""
    log = sim.log
    folder = Path(settings.CATALOG_DIR) / "grocery"
    get_backend().delete(text_product_ids)  # photo queries search the grocery products only
    summary = catalog_import([r for r in read_catalog("grocery", folder) if not r.skip_reason])
    products_index(product_ids=summary.product_ids)
    by_class = {int(p.specifications["class_id"]): p.pk for p in Product.objects.filter(pk__in=summary.product_ids)}
    log(f"photo part: {len(by_class)} grocery products indexed; encoding shoppers' photos ...")
    train = [(p, by_class[c]) for p, c in grocery_photos(folder, "train.txt") if c in by_class]
    val = [(p, by_class[c]) for p, c in grocery_photos(folder, "val.txt") if c in by_class]
    val_feats = photo_features([p for p, _ in val], "grocery-val")
    train_feats = photo_features([p for p, _ in train], "grocery-train")

    def feats(batch, i):
        return ImageFeatures(batch.features[i:i + 1], batch.logits[i:i + 1])

    def top1() -> float:
        hits = 0
        for i, (_, pid) in enumerate(val):
            page = product_search(image=feats(val_feats, i), per_page=1)
            hits += bool(page.products) and page.products[0].pk == pid
        return hits / len(val)

    before = top1()
    log(f"  val top-1 before: {before:.4f}")
    order = sim.rng.permutation(len(train))
    step = sim.config.days * 86_400 / max(1, len(train))
    clicked = 0
    for n, i in enumerate(order):
        _, pid = train[i]
        key, ip = f"photo-shopper-{sim.config.seed}-{n}", sim.ip()
        q = feats(train_feats, i)
        now = sim.tick(step)
        for page_no in range(1, 6):
            page = product_search(image=q, page=page_no)
            ids = [p.pk for p in page.products]
            recorded = services.impression_record(
                query="", product_ids=ids, session_key=key, page=page_no, per_page=page.per_page, total=page.total,
                image_vector=q.features[0], user_agent=BROWSER, ip=ip, now=now,
            )
            if pid in ids or not ids:
                break
        if pid in ids:
            outcome = services.click_record(
                token=recorded.token, product_id=pid, position=(page_no - 1) * page.per_page + ids.index(pid) + 1,
                session_key=key, user_agent=BROWSER, ip=ip, now=now + timedelta(seconds=8),
            )
            clicked += outcome.counted
    sim.refresh()
    after = top1()
    products_index(product_ids=text_product_ids)  # back in the index (stored embeddings, no re-encoding)
    log(f"  val top-1 after {clicked} counted clicks on {len(train)} shoppers' photos: {after:.4f}")
    return {"top1_before": before, "top1_after": after, "train_photos": len(train), "val_photos": len(val), "counted_clicks": clicked}


def simulate(config: SimulationConfig, log: Callable[[str], None] = print) -> dict:
    """The whole proof: text feedback loop + attacks on CrowdFlower, then photo references on Grocery."""
    started = time.perf_counter()
    sim = Simulator(config, log)
    catalog = read_crowdflower(Path(settings.CATALOG_DIR) / "crowdflower" / "train.csv")
    log(f"CrowdFlower: {len(catalog.products)} judged products, {len(catalog.gains)} queries")
    ids = catalog_reuse(catalog) or catalog_load(catalog, log)
    text = simulate_text(sim, catalog, ids)
    out = {
        "ndcg_before": round(text.pop("ndcg_before"), 4),
        "ndcg_after": round(text.pop("ndcg_after"), 4),
        "attack": text.pop("attack"),
        "sessions": config.sessions,
        "model": MODEL,
        "seed": config.seed,
        "text": text,
        "settings": {
            k: getattr(settings, k) for k in (
                "CLICK_HALF_LIFE_DAYS", "CLICK_PRIOR_STRENGTH", "CLICK_FULL_CREDIT_SESSIONS", "CLICK_QUERY_MIN_SESSIONS",
                "CLICK_MAX_LIFT_RANKS", "CLICK_MAX_DROP_RANKS", "CLICK_POSITION_ETA", "CLICK_PRODUCT_CAP", "PHOTO_REFS_PER_PRODUCT",
                "CLICK_NETWORK_PRODUCT_CAP", "CLICK_NETWORK_MAX_CLICKS", "CLICK_NETWORK_MAX_IMPRESSIONS",
            )
        } | {"SEARCH_WEIGHTS": dict(settings.SEARCH_WEIGHTS), "SEARCH_FUSION": settings.SEARCH_FUSION},
    }
    if config.photo:
        out["photo"] = simulate_photos(sim, ids)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out
