"""A product's admin page, "How shoppers find this product": the merchant's view of search.

Three parts, each read through an existing service (no search logic of its own):

* the queries that showed the product and the queries it was clicked from, over a chosen
  period, from the click log (:func:`search.clicks.analytics.product_queries`);
* where the product ranks for a query the merchant types, and why: the search runs exactly as
  the storefront's (:func:`search.request.parse_search_request`, ``SearchRequest.run``) and its
  score explanation (``FusedResult.explain``, the API's ``explain=true``) is shown in plain
  labels (:data:`search.hybrid.retrievers.RETRIEVER_LABELS`); nothing is recorded in the click log;
* the photo/text consistency of the product, shown only when the product carries a score
  (see :func:`consistency_of`).

Only the product's merchant's staff and superusers get here: the panel is added in
``render_change_form``, which the admin reaches only for an object in the user's queryset
(another merchant's product redirects to the admin index, as every change page does), and
:func:`product_insights` checks :func:`shop.permissions.can_edit_product` again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpRequest

from search.backends.base import SearchBackendError
from search.clicks.analytics import ProductQueries, ProductQueryRow, product_queries
from search.consistency import likely_mismatch
from search.hybrid.retrievers import RETRIEVER_LABELS
from search.request import SearchRequestError, parse_search_request
from shop.models import IndexState, Product
from shop.permissions import can_edit_product

#: The periods a merchant can choose (days, ending now); the first page shows DEFAULT_DAYS.
PERIOD_DAYS = (7, 30, 90)
DEFAULT_DAYS = 30
#: Results searched for the product when a merchant checks a query ("not in the first N").
RANK_DEPTH = 100
#: Rows per list of queries.
QUERY_ROWS = 20
#: Results named above the product, to show what it competes with.
TOP_SHOWN = 3
#: The page's anchor: the panel's forms come back to it.
ANCHOR = "how-shoppers-find"
#: What the optional consistency attribute of a product is called (filled by the photo/text check).
CONSISTENCY_ATTRIBUTE = "photo_text_consistency"

FUSION_WORDS = {
    "linear": "Linear fusion: each list's scores are scaled to 0–1 (min-max) and multiplied by the list's weight, "
              "then the parts are added.",
    "rrf": "Reciprocal Rank Fusion: each list adds its weight ÷ ({k} + the product's rank in it), then the parts are added.",
}


@dataclass(frozen=True)
class QueryLine:
    """One row of a query table: the query in words, and its counts."""

    label: str
    photo: bool
    impressions: int
    clicks: int
    ctr: float
    average_position: float | None

    @property
    def ctr_text(self) -> str:
        """CTR as a percentage with one decimal, e.g. ``"12.5 %"``; ``"–"`` without impressions."""
        return f"{100 * self.ctr:.1f} %" if self.impressions else "–"


@dataclass(frozen=True)
class ScoreLine:
    """One part of the product's score for a query, in plain labels."""

    name: str
    label: str
    meaning: str
    rank: int
    raw: float
    contribution: float


@dataclass
class RankLookup:
    """Where the product ranks for ``query`` among the first ``depth`` results, and why.

    ``rank`` is ``None`` when it is not among them (``total`` results matched in all); ``error``
    holds the plain reason when the query could not be run (nothing else is set then).
    """

    query: str
    depth: int = RANK_DEPTH
    rank: int | None = None
    total: int = 0
    score: float | None = None
    parts: list[ScoreLine] = field(default_factory=list)
    method: str = ""
    fusion: str = ""
    top: list[tuple[int, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def beyond_depth(self) -> bool:
        """More results matched than were searched, so the product may rank further down."""
        return self.total > self.depth


@dataclass(frozen=True)
class Consistency:
    """A product's photo/text consistency score, and whether it is flagged as a likely mismatch (``None``: not said)."""

    score: float
    flagged: bool | None = None


def query_label(row: ProductQueryRow) -> str:
    """The query as a merchant reads it: its words, or what the shopper searched with instead."""
    if row.query:
        return row.query
    return "A photo, no words" if row.photo else "No words (browsing by category, brand or price)"


def query_lines(rows: list[ProductQueryRow]) -> list[QueryLine]:
    return [QueryLine(query_label(r), r.photo, r.impressions, r.clicks, r.ctr, r.average_position) for r in rows]


def period_chosen(raw: str | None) -> tuple[int, str]:
    """The period in days from the ``days`` parameter, and an error in plain words when it was unusable."""
    if raw is None or raw == "":
        return DEFAULT_DAYS, ""
    if raw.strip().isdigit() and int(raw.strip()) in PERIOD_DAYS:
        return int(raw.strip()), ""
    choices = ", ".join(str(d) for d in PERIOD_DAYS[:-1]) + f" or {PERIOD_DAYS[-1]}"
    return DEFAULT_DAYS, f"Choose a period of {choices} days; showing the last {DEFAULT_DAYS} days."


def score_lines(explain: dict) -> list[ScoreLine]:
    """The parts of a score explanation (``FusedResult.explain()``), largest contribution first."""
    lines = [
        ScoreLine(name, *RETRIEVER_LABELS.get(name, (name, "")), int(part["rank"]), float(part["raw"]), float(part["contribution"]))
        for name, part in explain.items()
        if isinstance(part, dict)
    ]
    return sorted(lines, key=lambda line: -line.contribution)


def product_rank(product: Product, text: str, *, depth: int | None = None) -> RankLookup:
    """Run ``text`` as a shopper's search and find ``product`` among the first ``depth`` results.

    The search is the storefront's (same parsing, ranking, click prior); it records no
    impression. Bad words (empty, too long) and an engine that cannot answer give
    ``RankLookup.error`` in plain words instead of raising.

    Args:
        product: the product looked for.
        text: the words, as a shopper would type them.
        depth: results searched (default :data:`RANK_DEPTH`).
    """
    depth = depth or RANK_DEPTH
    lookup = RankLookup(query=text, depth=depth)
    if not text.strip():
        lookup.error = "Type the words a shopper might search for, e.g. the product's kind and colour."
        return lookup
    try:
        search = parse_search_request({"q": text}, per_page=depth)
        page = search.run()
    except SearchRequestError as exc:
        lookup.error = exc.reason
        return lookup
    except SearchBackendError:
        lookup.error = "Search is not answering right now, so the rank cannot be checked; try again in a minute."
        return lookup
    lookup.total, lookup.method, lookup.notices = page.total, page.method, list(page.notices)
    lookup.fusion = FUSION_WORDS.get(page.method, page.method).format(k=settings.SEARCH_RRF_K)
    lookup.top = [(p.pk, p.title) for p in page.products[:TOP_SHOWN]]
    for position, hit in enumerate(page.products, start=1):
        if hit.pk == product.pk:
            lookup.rank, lookup.score = position, float(hit.search_score)
            lookup.parts = score_lines(hit.search_explain)
            break
    return lookup


def consistency_of(product: Product) -> Consistency | None:
    """The product's photo/text consistency, when it has one; ``None`` shows nothing.

    Reads the score stored by the photo/text check (``search.consistency``: ``ProductEmbedding.consistency``,
    flagged below the catalog's threshold), or the optional attribute ``photo_text_consistency`` (:data:`CONSISTENCY_ATTRIBUTE`): a
    number (the score), or an object with ``score`` and, optionally, ``flagged`` (a likely
    mismatch). A model field, a property or an annotation of that name all work, so the check
    that computes the score adds it without touching the template.
    """
    value = getattr(product, CONSISTENCY_ATTRIBUTE, None)
    if value is None:  # the score the photo/text check stored with the product's vectors
        emb = getattr(product, "embedding", None)  # a missing reverse one-to-one raises an AttributeError
        if emb is None or emb.consistency is None:
            return None
        return Consistency(float(emb.consistency), likely_mismatch(emb))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Consistency(float(value))
    score = getattr(value, "score", None)
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        flagged = getattr(value, "flagged", None)
        return Consistency(float(score), None if flagged is None else bool(flagged))
    return None


def product_insights(request: HttpRequest, product: Product) -> dict | None:
    """The panel's context for ``product``, or ``None`` when ``request.user`` may not manage it.

    GET parameters: ``days`` (one of :data:`PERIOD_DAYS`) and ``rank_q`` (a query to rank the
    product for; present but empty is reported as an error, absent checks nothing).
    """
    if not can_edit_product(request.user, product):
        return None
    days, period_error = period_chosen(request.GET.get("days"))
    found: ProductQueries = product_queries(product.pk, days=days, limit=QUERY_ROWS)
    text = request.GET.get("rank_q")
    rank = product_rank(product, text) if text is not None else None
    keep = [(k, v) for k, v in request.GET.items() if k == "_changelist_filters"]
    return {
        "anchor": ANCHOR,
        "days": days,
        "periods": [(d, f"Last {d} days") for d in PERIOD_DAYS],
        "period_error": period_error,
        "retention_days": settings.CLICK_RETENTION_DAYS,
        "queries": found,
        "shown": query_lines(found.shown),
        "clicked": query_lines(found.clicked),
        "rank_q": text or "",
        "rank": rank,
        "depth": RANK_DEPTH,
        "not_indexed": product.index_state != IndexState.INDEXED,
        "index_state": product.get_index_state_display(),
        "consistency": consistency_of(product),
        "keep": keep,
    }


class ProductInsightsAdminMixin:
    """Adds "How shoppers find this product" to the product's change page (not to the add page)."""

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if change and obj is not None and obj.pk:
            context["insights"] = product_insights(request, obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)
