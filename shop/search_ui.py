"""What the search page shows around the results: facet links, filter chips, sort, pages, score parts.

Pure presentation: every function takes the request's parameters and a ``SearchPage`` and
returns plain values with ready-made URLs, so templates stay free of logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.http import QueryDict
from django.urls import reverse

from search.hybrid.retrievers import RETRIEVER_LABELS
from search.selectors import SearchPage
from shop.models import Category
from shop.templatetags.shop_tags import inr

#: Parameters that define a search; anything else in the URL is dropped from generated links.
SEARCH_PARAMS = ("q", "img", "category", "brand", "price_min", "price_max", "sort", "explain")
#: The parameters that narrow the results ("Clear all" removes them; words, photo and sort stay).
FILTER_PARAMS = ("category", "brand", "price_min", "price_max")
SORT_LABELS = {
    "relevance": "Relevance",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "rating": "Customer rating",
}
#: Page links shown either side of the current page.
PAGE_WINDOW = 2


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    count: int | None = None
    active: bool = False


@dataclass(frozen=True)
class ExplainRow:
    """One retriever's part in a result's fused score: its rank, raw score and contribution."""

    retriever: str
    label: str
    hint: str
    rank: int
    raw: float
    contribution: float


class SearchState:
    """The current search parameters, able to produce the URL of a changed search.

    Args:
        params: the request's GET parameters.
    """

    def __init__(self, params: QueryDict):
        self.params = QueryDict(mutable=True)
        for key in SEARCH_PARAMS:
            values = [v for v in params.getlist(key) if v.strip()]
            if values:
                self.params.setlist(key, values)

    def get(self, key: str) -> str:
        return self.params.get(key, "").strip()

    @property
    def q(self) -> str:
        return self.get("q")

    @property
    def price_min(self) -> str:
        return self.get("price_min")

    @property
    def price_max(self) -> str:
        return self.get("price_max")

    @property
    def brands(self) -> list[str]:
        return self.params.getlist("brand")

    def url(self, **changes: str | list[str] | None) -> str:
        """``/search/?...`` with ``changes`` applied (``None`` removes a key); the page resets to 1."""
        params = self.params.copy()
        for key, value in changes.items():
            if value is None or value == []:
                params.pop(key, None)
            elif isinstance(value, list):
                params.setlist(key, value)
            else:
                params[key] = value
        params.pop("page", None)
        query = params.urlencode()
        return reverse("shop:search") + (f"?{query}" if query else "")

    @property
    def clear_filters_url(self) -> str:
        """The same search with every filter removed (:data:`FILTER_PARAMS`)."""
        return self.url(**dict.fromkeys(FILTER_PARAMS))

    def page_url(self, page: int) -> str:
        base = self.url()
        if page <= 1:
            return base
        return f"{base}{'&' if '?' in base else '?'}page={page}"

    def hidden_fields(self, *exclude: str) -> list[tuple[str, str]]:
        """(name, value) pairs to carry the search through a GET form (sort, price range)."""
        return [(k, v) for k in SEARCH_PARAMS if k not in exclude for v in self.params.getlist(k)]


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _band_bounds(value: str) -> tuple[Decimal, Decimal | None]:
    lo, _, hi = value.partition("-")
    return Decimal(lo), (Decimal(hi) if hi else None)


def category_links(state: SearchState, page: SearchPage) -> tuple[list[Link], list[Link]]:
    """(breadcrumb of the selected category, links one level below it with counts)."""
    crumbs = []
    current = state.get("category")
    if current:
        crumbs.append(Link("All categories", state.url(category=None)))
        parts = [p.strip() for p in current.split(Category.PATH_SEPARATOR) if p.strip()]
        for depth in range(1, len(parts) + 1):
            path = Category.PATH_SEPARATOR.join(parts[:depth])
            crumbs.append(Link(parts[depth - 1], state.url(category=path), active=depth == len(parts)))
    children = [Link(f.label, state.url(category=f.value), f.count) for f in page.facets.get("category", [])]
    return crumbs, children


def brand_links(state: SearchState, page: SearchPage) -> list[Link]:
    """Every brand in the results plus the selected ones; each link toggles that brand."""
    selected = state.brands
    links = []
    seen = set()
    for facet in page.facets.get("brand", []):
        seen.add(facet.value)
        active = facet.value in selected
        toggled = [b for b in selected if b != facet.value] if active else [*selected, facet.value]
        links.append(Link(facet.label, state.url(brand=toggled), facet.count, active))
    for brand in selected:
        if brand not in seen:
            links.append(Link(brand, state.url(brand=[b for b in selected if b != brand]), 0, True))
    return sorted(links, key=lambda link: not link.active)  # selected brands first, then by count


def price_links(state: SearchState, page: SearchPage) -> list[Link]:
    """Price bands with counts; a band is the range [low, high) so the counts match the filter."""
    cur_min, cur_max = _number(state.get("price_min")), _number(state.get("price_max"))
    links = []
    for facet in page.facets.get("price", []):
        lo, hi = _band_bounds(facet.value)
        hi_incl = None if hi is None else hi - Decimal("0.01")
        active = cur_min == lo and cur_max == hi_incl
        if active:
            url = state.url(price_min=None, price_max=None)
        else:
            url = state.url(price_min=str(lo), price_max=None if hi_incl is None else str(hi_incl))
        links.append(Link(facet.label, url, facet.count, active))
    return links


def active_filters(state: SearchState) -> list[Link]:
    """Chips for every filter in use; each chip's URL removes that filter."""
    chips = []
    if state.get("category"):
        label = state.get("category").split(Category.PATH_SEPARATOR)[-1].strip()
        chips.append(Link(f"Category: {label}", state.url(category=None)))
    for brand in state.brands:
        chips.append(Link(f"Brand: {brand}", state.url(brand=[b for b in state.brands if b != brand])))
    lo, hi = _number(state.get("price_min")), _number(state.get("price_max"))
    if lo is not None or hi is not None:
        if lo is not None and hi is not None:
            label = f"{inr(lo)} – {inr(hi)}"
        elif lo is not None:
            label = f"{inr(lo)} and above"
        else:
            label = f"Up to {inr(hi)}"
        chips.append(Link(f"Price: {label}", state.url(price_min=None, price_max=None)))
    return chips


def sort_options(state: SearchState) -> list[Link]:
    """The sort choices; each ``Link.url`` holds the ``sort`` value for the dropdown."""
    current = state.get("sort") or "relevance"
    return [Link(label, value, active=value == current) for value, label in SORT_LABELS.items()]


def page_links(state: SearchState, page: SearchPage) -> list[Link | None]:
    """Page numbers around the current page, with ``None`` standing for a gap ("…")."""
    last = page.num_pages
    wanted = {1, last, *range(page.page - PAGE_WINDOW, page.page + PAGE_WINDOW + 1)}
    links: list[Link | None] = []
    previous = 0
    for n in sorted(p for p in wanted if 1 <= p <= last):
        if n - previous > 1:
            links.append(None)
        links.append(Link(str(n), state.page_url(n), active=n == page.page))
        previous = n
    return links


def explain_rows(explain: dict) -> list[ExplainRow]:
    """The retrievers that found a result, best contribution first (empty when browsing)."""
    rows = [
        ExplainRow(name, *RETRIEVER_LABELS.get(name, (name, "")), int(part["rank"]), float(part["raw"]), float(part["contribution"]))
        for name, part in explain.items()
        if isinstance(part, dict)
    ]
    return sorted(rows, key=lambda r: -r.contribution)


def result_range(page: SearchPage) -> tuple[int, int]:
    """1-based positions of the first and last result on this page (0, 0 when empty)."""
    if not page.products:
        return 0, 0
    first = (page.page - 1) * page.per_page + 1
    return first, first + len(page.products) - 1
