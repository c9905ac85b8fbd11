"""``/staff/analytics/``: search analytics for staff (top and zero-result queries, CTR by position, click winners and losers)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from search.clicks.analytics import analytics_summary, svg_bar_chart

#: Periods the page offers (days).
PERIODS = (1, 7, 30, 90)


@staff_member_required
def analytics(request: HttpRequest) -> HttpResponse:
    """The analytics page; ``?days=`` one of :data:`PERIODS` (default 30)."""
    raw = request.GET.get("days", "30")
    days = int(raw) if raw.isdigit() and int(raw) in PERIODS else 30
    data = analytics_summary(days=days)
    ctr = data["ctr_by_position"]
    data["ctr_chart"] = mark_safe(
        svg_bar_chart([str(p) for p, *_ in ctr], [c for *_, c in ctr], title="CTR by position", ylabel="counted clicks / impressions")
    )
    top = data["top_queries"][:15]
    data["top_chart"] = mark_safe(svg_bar_chart([q.query[:24] for q in top], [q.searches for q in top], title="Top queries", ylabel="searches")) if top else ""
    data["periods"] = PERIODS
    return render(request, "search/analytics.html", data)
