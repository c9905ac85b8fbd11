"""``/staff/analytics/``: search analytics for staff (top and zero-result queries, CTR by position, click winners and losers).

A superuser sees the whole store; a merchant's staff see only their merchants' products
(:func:`search.clicks.analytics.analytics_for_products`); other staff are refused (403).
"""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from search.clicks.analytics import analytics_for_products, analytics_summary, svg_bar_chart
from shop.permissions import is_merchant_staff, products_editable_by

#: Periods the page offers (days).
PERIODS = (1, 7, 30, 90)


@staff_member_required
def analytics(request: HttpRequest) -> HttpResponse:
    """The analytics page; ``?days=`` one of :data:`PERIODS` (default 30)."""
    raw = request.GET.get("days", "30")
    days = int(raw) if raw.isdigit() and int(raw) in PERIODS else 30
    if request.user.is_superuser:
        data = analytics_summary(days=days)
    elif is_merchant_staff(request.user):
        data = analytics_for_products(set(products_editable_by(request.user).values_list("pk", flat=True)), days=days)
    else:
        raise PermissionDenied("Search analytics are for superusers and merchant staff.")
    ctr = data["ctr_by_position"]
    data["ctr_chart"] = mark_safe(
        svg_bar_chart([str(p) for p, *_ in ctr], [c for *_, c in ctr], title="CTR by position", ylabel="counted clicks / impressions")
    )
    top = data["top_queries"][:15]
    data["top_chart"] = mark_safe(svg_bar_chart([q.query[:24] for q in top], [q.searches for q in top], title="Top queries", ylabel="searches")) if top else ""
    data["periods"] = PERIODS
    return render(request, "search/analytics.html", data)
