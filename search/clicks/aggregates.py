"""Click aggregates: turn the recorded events into click priors, and purge events past the retention.

* :func:`click_aggregates_refresh` (a periodic Celery task) turns the events into
  :class:`~search.clicks.models.ClickStat` rows with :mod:`search.clicks.click_model`.
* :func:`events_purge` enforces ``CLICK_RETENTION_DAYS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from search.clicks import click_model
from search.clicks.models import ClickStat, EventDiscard, PhotoReference, SearchClick, SearchImpression
from search.clicks.selectors import PRIOR_MEAN_KEY, prior_config
from search.clicks.services import photo_refs_generation_bump
from shop.models import Product

#: A shopper's photo reference is dropped once its decayed weight falls below this (two half-lives).
PHOTO_REF_MIN_WEIGHT = 0.25


@dataclass
class RefreshReport:
    """What :func:`click_aggregates_refresh` did."""

    impressions: int = 0
    clicks: int = 0
    query_rows: int = 0
    product_rows: int = 0
    head_queries: int = 0
    prior_mean: float = click_model.DEFAULT_PRIOR_MEAN
    photo_refs_dropped: int = 0
    notes: list[str] = field(default_factory=list)


def click_aggregates_refresh(*, now: datetime | None = None) -> RefreshReport:
    """Recompute every :class:`ClickStat` from the events in the retention window.

    Reads impressions and counted clicks once (in chunks), aggregates them with
    :func:`search.clicks.click_model.aggregate` (grouped by network, each network's share bounded by
    ``CLICK_NETWORK_MAX_CLICKS`` / ``CLICK_NETWORK_MAX_IMPRESSIONS``), and replaces the table in one
    transaction, so searches see either the old or the new scores. Nothing is pushed to the search
    engine: the priors are applied after fusion by ``search.hybrid.click_prior``, on every engine
    alike. Shoppers' photo references that decayed below ``PHOTO_REF_MIN_WEIGHT`` are dropped.
    """
    now = now or timezone.now()
    horizon = now - timedelta(days=settings.CLICK_RETENTION_DAYS)
    report = RefreshReport()

    def impressions():
        rows = SearchImpression.objects.filter(created__gte=horizon, created__lte=now).values_list(
            "pk", "query", "session_hash", "product_ids", "created", "network_hash"
        )
        for pk, query, shash, ids, created, network in rows.iterator(chunk_size=2000):
            report.impressions += 1
            yield click_model.ImpressionEvent(pk, query, shash, [int(i) for i in ids or []], (now - created).total_seconds(), network)

    def clicks():
        rows = SearchClick.objects.filter(counted=True, created__gte=horizon, created__lte=now).values_list(
            "impression_id", "impression__query", "session_hash", "product_id", "created", "network_hash"
        )
        for imp_id, query, shash, pid, created, network in rows.iterator(chunk_size=2000):
            report.clicks += 1
            yield click_model.ClickEvent(imp_id, query, shash, pid, (now - created).total_seconds(), network)

    agg = click_model.aggregate(
        impressions(), clicks(), half_life_days=settings.CLICK_HALF_LIFE_DAYS, eta=settings.CLICK_POSITION_ETA,
        query_min_sessions=settings.CLICK_QUERY_MIN_SESSIONS, network_max_clicks=settings.CLICK_NETWORK_MAX_CLICKS,
        network_max_impressions=settings.CLICK_NETWORK_MAX_IMPRESSIONS,
    )
    config = prior_config()
    existing = set(Product.objects.filter(pk__in=list(agg.per_product)).values_list("pk", flat=True))
    rows = []
    for (query, pid), ev in agg.per_query.items():
        if pid in existing:
            rows.append(_stat(query, pid, ev, agg.prior_mean, config))
    report.query_rows = len(rows)
    globals_ = {pid: _stat(ClickStat.GLOBAL, pid, ev, agg.prior_mean, config) for pid, ev in agg.per_product.items() if pid in existing}
    rows.extend(globals_.values())
    report.product_rows = len(globals_)
    report.head_queries = len({q for q, _ in agg.per_query})
    report.prior_mean = agg.prior_mean
    with transaction.atomic():
        ClickStat.objects.all().delete()
        ClickStat.objects.bulk_create(rows, batch_size=2000)
    cache.set(PRIOR_MEAN_KEY, agg.prior_mean, timeout=None)

    decayed_after = now - timedelta(days=settings.CLICK_HALF_LIFE_DAYS * np.log2(1 / PHOTO_REF_MIN_WEIGHT))
    report.photo_refs_dropped, _ = PhotoReference.objects.filter(created__lt=decayed_after).delete()
    if report.photo_refs_dropped:
        photo_refs_generation_bump()
    return report


def _stat(query: str, pid: int, ev: click_model.Evidence, prior_mean: float, config: click_model.PriorConfig) -> ClickStat:
    return ClickStat(
        query=query, product_id=pid, impressions=ev.impressions, expected=ev.expected, clicks=ev.clicks, sessions=ev.sessions,
        prior=click_model.click_prior(ev, prior_mean=prior_mean, config=config),
    )


def events_purge(*, older_than_days: int | None = None, now: datetime | None = None) -> dict[str, int]:
    """Delete impressions (with their clicks), photo references and discard counts older than the retention.

    Returns:
        Rows deleted per table.
    """
    days = settings.CLICK_RETENTION_DAYS if older_than_days is None else older_than_days
    if days < 0:
        raise ValueError(f"Retention must be >= 0 days, got {days}")
    cutoff = (now or timezone.now()) - timedelta(days=days)
    out = {}
    out["photo_references"], _ = PhotoReference.objects.filter(created__lt=cutoff).delete()
    out["clicks"], _ = SearchClick.objects.filter(created__lt=cutoff).delete()
    deleted, per_model = SearchImpression.objects.filter(created__lt=cutoff).delete()
    out["impressions"] = per_model.get(SearchImpression._meta.label, 0)
    out["clicks"] += per_model.get(SearchClick._meta.label, 0)
    out["discard_counts"], _ = EventDiscard.objects.filter(day__lt=cutoff.date()).delete()
    if out["photo_references"]:
        photo_refs_generation_bump()
    return out
