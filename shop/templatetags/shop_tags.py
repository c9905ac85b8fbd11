"""Template filters of the storefront: prices in rupees, rating stars."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

register = template.Library()


def _group_indian(digits: str) -> str:
    """``"12345678"`` -> ``"1,23,45,678"``: the last three digits, then groups of two (lakh, crore)."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return ",".join(groups) + "," + tail


@register.filter
def inr(value) -> str:
    """A price in Indian rupees as shoppers read it: ``₹1,299``, ``₹1,24,999``, ``₹49.50``.

    Paise are shown only when there are some; an empty price gives ``""``.
    """
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return ""
    sign = "-" if amount < 0 else ""
    rupees, _, paise = f"{abs(amount):.2f}".partition(".")
    text = f"₹{sign}{_group_indian(rupees)}"
    return text if paise == "00" else f"{text}.{paise}"


@register.filter
def stars_percent(rating) -> int:
    """Width of the filled part of a five-star bar, in percent (0 for no rating)."""
    try:
        return max(0, min(100, round(float(rating) / 5 * 100)))
    except (TypeError, ValueError):
        return 0


@register.filter
def rating_class(rating) -> str:
    """CSS modifier for a rating badge: green from 4, amber from 3, red below."""
    try:
        value = float(rating)
    except (TypeError, ValueError):
        return "none"
    return "good" if value >= 4 else "ok" if value >= 3 else "poor"
