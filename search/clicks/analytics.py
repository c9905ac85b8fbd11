"""Reads for the staff analytics page (top and zero-result queries, CTR by position, who gains and loses from clicks)
and for a product's admin page (the queries that showed it and the queries it was clicked from)."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from search.clicks.models import ClickStat, EventDiscard, SearchClick, SearchImpression
from shop.models import Product

#: Positions charted for CTR by position (first page).
CHART_POSITIONS = 24
#: Impressions read for CTR by position, newest first; bounds the page's cost on a busy shop.
MAX_IMPRESSIONS_SCANNED = 200_000


@dataclass
class QueryRow:
    query: str
    searches: int
    sessions: int
    clicks: int

    @property
    def ctr(self) -> float:
        return self.clicks / self.searches if self.searches else 0.0


@dataclass
class ProductRow:
    product: Product
    prior: float
    clicks: float
    expected: float


def analytics_summary(*, days: int = 30, limit: int = 20) -> dict:
    """Everything the analytics page shows, over the last ``days`` days."""
    since = timezone.now() - timedelta(days=days)
    imps = SearchImpression.objects.filter(created__gte=since)
    text = imps.exclude(query="")
    top = list(
        text.filter(page=1).values("query").annotate(n=Count("pk"), s=Count("session_hash", distinct=True)).order_by("-n", "query")[:limit]
    )
    clicks = dict(
        SearchClick.objects.filter(counted=True, created__gte=since, impression__query__in=[r["query"] for r in top])
        .values_list("impression__query").annotate(n=Count("pk"))
    )
    zero = list(text.filter(total=0).values("query").annotate(n=Count("pk")).order_by("-n", "query")[:limit])
    return {
        "days": days,
        "searches": imps.filter(page=1).count(),
        "photo_searches": imps.filter(page=1, is_image_query=True).count(),
        "clicks": SearchClick.objects.filter(created__gte=since, counted=True).count(),
        "top_queries": [QueryRow(r["query"], r["n"], r["s"], clicks.get(r["query"], 0)) for r in top],
        "zero_result": [(r["query"], r["n"]) for r in zero],
        "ctr_by_position": ctr_by_position(since=since),
        "gaining": _products(ClickStat.objects.filter(query=ClickStat.GLOBAL, prior__gt=0.5).order_by("-prior")[:limit]),
        "losing": _products(ClickStat.objects.filter(query=ClickStat.GLOBAL, prior__lt=0.5).order_by("prior")[:limit]),
        "discards": list(
            EventDiscard.objects.filter(day__gte=since.date()).values("kind", "reason").annotate(n=Sum("count")).order_by("-n")
        ),
    }


def ctr_by_position(*, since) -> list[tuple[int, int, int, float]]:
    """``(position, impressions, counted clicks, CTR)`` for page positions 1..CHART_POSITIONS."""
    shown: Counter[int] = Counter()
    rows = SearchImpression.objects.filter(created__gte=since).order_by("-created").values_list("product_ids", "offset")
    for ids, _offset in rows[:MAX_IMPRESSIONS_SCANNED].iterator(chunk_size=5000):
        for pos in range(1, min(len(ids or []), CHART_POSITIONS) + 1):
            shown[pos] += 1
    clicked = Counter()
    for pos, offset in SearchClick.objects.filter(created__gte=since, counted=True).values_list("position", "impression__offset"):
        clicked[pos - offset] += 1
    return [(p, shown[p], clicked[p], clicked[p] / shown[p] if shown[p] else 0.0) for p in range(1, CHART_POSITIONS + 1)]


def _products(stats) -> list[ProductRow]:
    stats = list(stats)
    products = Product.objects.in_bulk([s.product_id for s in stats])
    return [ProductRow(products[s.product_id], s.prior, s.clicks, s.expected) for s in stats if s.product_id in products]


def svg_bar_chart(labels: list[str], values: list[float], *, title: str, ylabel: str) -> str:
    """A small bar chart as inline SVG (matplotlib, server-side, no JavaScript).

    Labels are shoppers' queries: they are drawn as plain text (``parse_math=False``), so a query
    such as ``$\\frac$`` is not read as mathtext (which raised and took the page down), and the
    SVG holds text only as glyph paths and escaped comments, safe to put in the page as it is.
    """
    import matplotlib  # about a second to import: only when the staff page draws a chart

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.6), dpi=100)
    ax = fig.add_subplot()
    ax.bar(range(len(values)), values, color="#3b6ea5")
    rotation = 60 if max((len(x) for x in labels), default=0) > 3 else 0
    ax.set_xticks(range(len(labels)), labels, rotation=rotation, fontsize=7, ha="right", parse_math=False)
    ax.set_title(title, fontsize=10, parse_math=False)
    ax.set_ylabel(ylabel, fontsize=8, parse_math=False)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    return svg[svg.find("<svg"):]


# -- one product: the searches that showed it and the ones that led to a click ------------------------------
#: Impressions read per product page, newest first; bounds the admin page's cost on a busy shop.
MAX_PRODUCT_IMPRESSIONS_SCANNED = 20_000


@dataclass
class ProductQueryRow:
    """How one query found one product over a period.

    ``query`` is the normalised query key (``""`` with ``photo`` for a photo-only search, ``""``
    without it for browsing by filters); ``position_sum`` adds the absolute 1-based positions of
    the impressions counted in ``impressions``.
    """

    query: str
    photo: bool
    impressions: int = 0
    clicks: int = 0
    position_sum: int = 0

    @property
    def ctr(self) -> float:
        """Counted clicks per impression, in [0, 1] (0 without impressions)."""
        return min(1.0, self.clicks / self.impressions) if self.impressions else 0.0

    @property
    def average_position(self) -> float | None:
        """Mean 1-based position the product was shown at for this query, or ``None`` if never shown."""
        return self.position_sum / self.impressions if self.impressions else None


@dataclass
class ProductQueries:
    """The searches that showed a product (``shown``, most impressions first) and that led to a
    counted click on it (``clicked``, most clicks first), over ``days`` days."""

    days: int
    shown: list[ProductQueryRow]
    clicked: list[ProductQueryRow]
    impressions: int
    clicks: int
    capped: bool = False


def product_queries(product_id: int, *, days: int = 30, limit: int = 20, now=None) -> ProductQueries:
    """The queries that showed ``product_id`` and the queries whose results it was clicked from.

    Read from the event log (:class:`SearchImpression`, counted :class:`SearchClick` rows), not
    from the decayed :class:`ClickStat` aggregates, so the figures are plain counts over the
    period. An impression is one results page on which the product was shown; its position is
    where it was shown (``offset + index + 1``). CTR is counted clicks / impressions of the same
    query. The database narrows the impressions by a text match on the stored id list (newest
    first, at most ``MAX_PRODUCT_IMPRESSIONS_SCANNED`` of them: ``capped`` says the bound was
    reached, and the counts are then those of the newest pages); each candidate's period and
    position are checked exactly here.

    Args:
        product_id: the product.
        days: the period, ending now (``now``).
        limit: most rows per list.

    Raises:
        ValueError: ``days`` below 1 or ``limit`` below 1.
    """
    if days < 1 or limit < 1:
        raise ValueError(f"days and limit must be at least 1, got days={days}, limit={limit}")
    since = (now or timezone.now()) - timedelta(days=days)
    rows: dict[tuple[str, bool], ProductQueryRow] = {}

    def row(query: str, photo: bool) -> ProductQueryRow:
        return rows.setdefault((query, bool(photo)), ProductQueryRow(query, bool(photo)))

    # The text match alone, newest rows first by primary key: with the period in the WHERE clause,
    # SQLite walks the ``created`` index and fetches every row of the period one by one (6x slower
    # for a rarely shown product on 40k pages; bench/product_insights.py); the period is checked here.
    candidates = (
        SearchImpression.objects.filter(product_ids__icontains=str(int(product_id)))
        .order_by("-pk").values_list("query", "is_image_query", "product_ids", "offset", "created")
    )
    scanned = 0
    for query, photo, ids, offset, created in candidates[:MAX_PRODUCT_IMPRESSIONS_SCANNED].iterator(chunk_size=2000):
        scanned += 1
        if created < since or (now is not None and created > now):
            continue
        try:
            index = [int(i) for i in ids or []].index(int(product_id))
        except ValueError:  # the digits matched inside another id
            continue
        found = row(query, photo)
        found.impressions += 1
        found.position_sum += offset + index + 1
    clicks = (
        SearchClick.objects.filter(product_id=product_id, counted=True, created__gte=since, created__lte=now or timezone.now())
        .values_list("impression__query", "impression__is_image_query").annotate(n=Count("pk"))
    )
    for query, photo, n in clicks:
        row(query, photo).clicks += n
    everything = list(rows.values())
    shown = sorted((r for r in everything if r.impressions), key=lambda r: (-r.impressions, -r.clicks, r.query, r.photo))
    clicked = sorted((r for r in everything if r.clicks), key=lambda r: (-r.clicks, -r.impressions, r.query, r.photo))
    return ProductQueries(
        days=days, shown=shown[:limit], clicked=clicked[:limit], impressions=sum(r.impressions for r in everything),
        clicks=sum(r.clicks for r in everything), capped=scanned >= MAX_PRODUCT_IMPRESSIONS_SCANNED,
    )
