"""The click-feedback section of ``manage.py search_status``: events recorded and discarded, per reason."""

from __future__ import annotations

from datetime import timedelta

from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone
from rich.table import Table

from search.clicks.models import ClickStat, DiscardReason, EventDiscard, PhotoReference, SearchClick, SearchImpression
from search.clicks.selectors import PRIOR_MEAN_KEY


def click_status_tables(*, days: int = 7) -> list[Table]:
    """Two tables: events and aggregates of the last ``days`` days, and discards per kind and reason."""
    since = timezone.now() - timedelta(days=days)
    events = Table(title=f"Click feedback, last {days} days")
    events.add_column("what")
    events.add_column("count", justify="right")
    events.add_row("impressions", str(SearchImpression.objects.filter(created__gte=since).count()))
    events.add_row("clicks counted", str(SearchClick.objects.filter(created__gte=since, counted=True).count()))
    events.add_row("clicks stored, not counted", str(SearchClick.objects.filter(created__gte=since, counted=False).count()))
    events.add_row("per-(query, product) priors", str(ClickStat.objects.exclude(query=ClickStat.GLOBAL).count()))
    events.add_row("product popularity priors", str(ClickStat.objects.filter(query=ClickStat.GLOBAL).count()))
    events.add_row("shoppers' photo references", str(PhotoReference.objects.count()))
    mean = cache.get(PRIOR_MEAN_KEY)
    events.add_row("catalogue mean attractiveness", "not refreshed yet" if mean is None else f"{mean:.4f}")

    discards = Table(title=f"Discarded events, last {days} days")
    discards.add_column("kind")
    discards.add_column("reason")
    discards.add_column("count", justify="right")
    labels = dict(DiscardReason.choices)
    rows = (
        EventDiscard.objects.filter(day__gte=since.date()).values("kind", "reason").annotate(n=Sum("count")).order_by("kind", "-n")
    )
    for row in rows:
        discards.add_row(row["kind"], f"{row['reason']} ({labels.get(row['reason'], '?')})", str(row["n"]))
    if not rows:
        discards.add_row("-", "nothing discarded", "0")
    return [events, discards]
