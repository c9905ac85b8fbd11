"""Simulated shoppers on a judged catalog, in memory: the click log a storefront would record.

Same semantics as ``manage.py simulate_clicks`` (:mod:`search.clicks.simulation`), without the database
and the HTTP guards (honest shoppers trip none of them: one click per session at most):

* a session picks a query from the traffic queries, Zipf-distributed (``query_zipf``) over a
  seeded popularity order;
* the shopper sees page 1 (``SEARCH_PAGE_SIZE`` results) of the **current default ranking**: the
  storefront's fused ranking plus the click prior as of the last refresh of the aggregates
  (:func:`search.hybrid.click_prior.apply_click_prior` with ``SEARCH_WEIGHTS["clicks"]`` and the rank caps);
* cascade model (Craswell, Zoeter, Taylor and Ramsey, WSDM 2008): results are examined top down,
  each clicked with probability :func:`search.clicks.simulation.attractiveness` of its judged gain
  (``max(0.02, (2^g - 1) / 8)``); the first click satisfies the shopper, who stops there;
* the aggregates (:func:`search.clicks.click_model.aggregate`) are refreshed every ``refresh_every``
  sessions on a simulated clock spread over ``days`` days, as the Celery beat task does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from search.backends.base import FusedResult
from search.clicks import click_model
from search.clicks.click_model import attractiveness
from search.clicks.selectors import prior_config
from search.hybrid.pipeline import click_prior_weigh

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class ShopperConfig:
    """Knobs of :func:`simulate_sessions` (defaults: those of ``simulate_clicks``)."""

    sessions: int = 3000
    seed: int = 0
    days: float = 14.0
    refresh_every: int = 250
    query_zipf: float = 0.6
    page_size: int | None = None  # None: SEARCH_PAGE_SIZE


@dataclass
class ClickLog:
    """Impressions and counted clicks as the storefront stores them; times in seconds since the first session.

    Attributes:
        impressions: ``(impression id, query key, session, product ids on the page, time)``.
        clicks: ``(impression id, query key, session, product id, 1-based position, time)``.
        end: the time of the last session (the refresh after it sees every event at this age).
    """

    impressions: list[tuple[int, str, str, tuple[int, ...], float]] = field(default_factory=list)
    clicks: list[tuple[int, str, str, int, int, float]] = field(default_factory=list)
    end: float = 0.0

    def events(self, at: float | None = None) -> tuple[list[click_model.ImpressionEvent], list[click_model.ClickEvent]]:
        """The log as :mod:`search.clicks.click_model` events, aged as seen at time ``at`` (default: :attr:`end`)."""
        now = self.end if at is None else at
        imps = [click_model.ImpressionEvent(i, q, s, ids, now - t) for i, q, s, ids, t in self.impressions if t <= now]
        clicks = [click_model.ClickEvent(i, q, s, pid, now - t) for i, q, s, pid, _, t in self.clicks if t <= now]
        return imps, clicks


@dataclass
class ClickPriors:
    """The ``ClickStat`` table in memory: per-(query, product) priors for head queries, per-product otherwise."""

    per_query: dict[tuple[str, int], float] = field(default_factory=dict)
    per_product: dict[int, float] = field(default_factory=dict)

    def for_query(self, key: str, ids: Sequence[int]) -> dict[int, float]:
        """Prior of each candidate that has one, as ``search.clicks.selectors.click_priors`` reads the table."""
        out = {}
        for pid in ids:
            prior = self.per_query.get((key, pid), self.per_product.get(pid))
            if prior is not None:
                out[pid] = prior
        return out


def click_priors(log: ClickLog, at: float | None = None) -> ClickPriors:
    """Aggregate the log with the storefront's settings (``click_aggregates_refresh`` without the database)."""
    imps, clicks = log.events(at)
    if not imps:
        return ClickPriors()
    agg = click_model.aggregate(
        imps, clicks, half_life_days=settings.CLICK_HALF_LIFE_DAYS, eta=settings.CLICK_POSITION_ETA,
        query_min_sessions=settings.CLICK_QUERY_MIN_SESSIONS,
    )
    config = prior_config()
    return ClickPriors(
        per_query={k: click_model.click_prior(e, prior_mean=agg.prior_mean, config=config) for k, e in agg.per_query.items()},
        per_product={k: click_model.click_prior(e, prior_mean=agg.prior_mean, config=config) for k, e in agg.per_product.items()},
    )


def with_click_prior(fused: list[FusedResult], priors: ClickPriors, key: str) -> list[FusedResult]:
    """The storefront's ``_click_prior_apply``: prior weight, scale and rank caps from settings."""
    return apply_priors(fused, priors.for_query(key, [r.id for r in fused]))


def apply_priors(fused: list[FusedResult], found: Mapping[int, float]) -> list[FusedResult]:
    """:func:`~search.hybrid.click_prior.apply_click_prior` with the storefront's weight, scale and rank caps; product id -> prior in [0, 1]."""
    weight = float(settings.SEARCH_WEIGHTS.get("clicks", 0.0))
    if not weight or not fused or not found:
        return fused
    return click_prior_weigh(fused, found, weight=weight, method=settings.SEARCH_FUSION)


def simulate_sessions(
    traffic: Sequence[str],
    query_text: Mapping[str, str],
    default_ranking: Mapping[str, list[FusedResult]],
    gains: Mapping[str, Mapping[int, float]],
    config: ShopperConfig = ShopperConfig(),
    progress: Callable[[str], None] | None = None,
) -> ClickLog:
    """Run ``config.sessions`` cascade shoppers on the ``traffic`` query ids.

    Args:
        traffic: query ids shoppers search (the training half); nothing else is ever shown.
        query_text: query id -> words (the click log is keyed by ``click_model.query_key`` of them).
        default_ranking: query id -> the fused ranking without clicks, best first.
        gains: query id -> product id -> judged gain 0..3 (missing: 0); only the simulated
            shoppers read it, never the learners.
        config: see :class:`ShopperConfig`.

    Returns:
        The click log; ``len(log.impressions) == config.sessions``.
    """
    rng = np.random.default_rng(config.seed)
    traffic = sorted(traffic)
    page_size = config.page_size or settings.SEARCH_PAGE_SIZE
    weights = 1.0 / np.arange(1, len(traffic) + 1) ** config.query_zipf
    probs = weights[rng.permutation(len(traffic))]
    probs = probs / probs.sum()
    step = config.days * SECONDS_PER_DAY / max(1, config.sessions)
    log, priors, pages = ClickLog(), ClickPriors(), {}
    picks = rng.choice(len(traffic), size=config.sessions, p=probs)
    for n in range(config.sessions):
        qid = traffic[int(picks[n])]
        key = click_model.query_key(query_text[qid])
        now = (n + 1) * step
        if qid not in pages:  # the page only changes when the priors do
            pages[qid] = tuple(r.id for r in with_click_prior(default_ranking[qid], priors, key)[:page_size])
        page, session = pages[qid], f"shopper-{config.seed}-{n}"
        log.impressions.append((n, key, session, page, now))
        judged = gains.get(qid, {})
        for position, pid in enumerate(page, start=1):
            if rng.random() < attractiveness(judged.get(pid, 0.0)):
                log.clicks.append((n, key, session, pid, position, now + 5 + position))
                break
        log.end = now
        if (n + 1) % config.refresh_every == 0:
            priors, pages = click_priors(log, at=now), {}
            if progress:
                progress(f"  {n + 1}/{config.sessions} sessions, {len(log.clicks)} clicks")
    log.end += 60.0  # the last clicks land after their impression; the final refresh sees them all
    return log
