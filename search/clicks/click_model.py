"""The click model: shoppers' clicks turned into a bounded prior per (query, product) and per product.

Pure functions, no database: :mod:`search.clicks.services` feeds them the recorded events and stores
what they return.

**Position bias.** A result lower on the page is clicked less because it is seen less, not only
because it is worse. We use the position-based model (PBM; Craswell, Zoeter, Taylor and Ramsey,
"An experimental comparison of click position-bias models", WSDM 2008): a click needs an
examination and an attraction, ``P(click | d, r) = θ_r · α_d``, with the examination propensity
``θ_r = 1 / r^η`` of Joachims, Swaminathan and Schnabel ("Unbiased learning-to-rank with biased
feedback", WSDM 2017), η = 1 by default (``CLICK_POSITION_ETA``); ``r`` is the position on the
page the shopper saw. A product's attractiveness is then estimated as *clicks over expected
clicks* (COEC; Zhang and Jones, "Comparing click logs and editorial labels for training query
rewriting", WWW 2007 query-log workshop), which is the maximum-likelihood ``α`` under the PBM
with known propensities: ``α̂ = C / E`` with ``E = Σ_impressions θ_{r(d)}``.

**Smoothing.** One click on a product shown once would give a huge ``C / E``. We use the
posterior mean under a Beta prior centred on the catalogue mean ``α₀ = ΣC / ΣE`` with strength
``m`` expected clicks (the conjugate Beta-Binomial posterior mean; empirical Bayes, since the
prior's mean is estimated from the catalogue itself):
``α̃ = (C + m·α₀) / (E + m)``. A product without evidence sits exactly at the mean.

**Robustness to one network.** Sessions are free to make (a cookie-less request is a new one),
so evidence is grouped by the client's *network* (its /24 IPv4 or /64 IPv6 prefix, stored as an
HMAC; the session where the address is unknown), the *source* below. Every quantity one source
feeds is bounded so that it weighs at most what one shopper weighs, and nothing when no other
source backs it:

* per key and source, the evidence is scaled down, click-through ratio kept, to at most
  ``CLICK_NETWORK_MAX_IMPRESSIONS`` impressions and ``CLICK_NETWORK_MAX_CLICKS`` clicks (one each
  by default), whatever the number of sessions;
* ``C`` leaves out the source that clicked most (leave-top-source-out): a click starts to count
  when a *second* network clicks the same product;
* a source's impressions of a query (``E``, the impressions, the networks that saw a product, the
  searching networks of the query, and through them ``α₀``) count only once the source is
  *vouched for* there: it clicked a product on that query that another network clicked too (for
  the global per-product scores: that another network clicked on any query). Pages nobody clicked,
  and pages whose only click nobody else shares, change no score: a flood of views, or of
  sessions clicking a product no one else wants, moves nothing even beside other shoppers'
  traffic. Clicks on results leave implicit judgements relative to the clicked result (Joachims,
  "Optimizing search engines using clickthrough data", KDD 2002); here a page's skipped results
  count against them only when its click is corroborated.

A *positive* boost is scaled by ``min(1, S / S_full)``, ``S`` the (decayed) number of networks
that clicked (a positive boost needs ``C > 0``, so two networks already); a *negative* one by
``min(1, (N - 1) / S_full)``, ``N`` the number of vouched networks that saw the product there.
A query gets per-query scores from ``CLICK_QUERY_MIN_SESSIONS`` vouched networks on. The limit:
a network that behaves exactly like one more shopper (its click shared by another network)
weighs what one shopper weighs, never more.

**Time decay.** Every event weighs ``0.5 ** (age / half_life)`` (``CLICK_HALF_LIFE_DAYS``).

**Output.** ``lift = α̃ / α₀`` (1 = average), ``boost = (lift - 1) / (lift + 1)`` in ``(-1, 1)``
(then the credibility factor for positive values), ``prior = (1 + boost) / 2`` in ``[0, 1]``,
0.5 meaning "no evidence either way". :func:`search.hybrid.click_prior.apply_click_prior` adds
``weight · scale · boost`` to a fused score and caps how many ranks that may lift a product.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from search.query import normalise_query

#: Catalogue mean attractiveness used before any click was recorded: the PBM estimate is then
#: unknown, and any positive value gives every product the neutral prior 0.5.
DEFAULT_PRIOR_MEAN = 0.1
SECONDS_PER_DAY = 86_400.0


#: Simulated shoppers (``simulate_clicks``, ``evaluate --clicks``): the click probability of an
#: examined result of gain 0 (shoppers sometimes click the wrong thing), and the largest gain.
NOISE_CLICK = 0.02
MAX_GAIN = 3


def attractiveness(gain: float) -> float:
    """Click probability of an examined result with gain ``g`` in 0..3 in the simulated cascade:
    ``max(0.02, (2^g - 1) / 8)`` (the satisfaction probability of ERR, Chapelle et al., CIKM 2009)."""
    return max(NOISE_CLICK, (2.0 ** gain - 1.0) / 2.0 ** MAX_GAIN)


def query_key(text: str | None) -> str:
    """The key clicks are aggregated under: the normalised query, lower-cased; ``""`` for a photo-only query."""
    return normalise_query(text).casefold()[:200]


def examination_probability(position: int, eta: float = 1.0) -> float:
    """PBM propensity ``θ_r = 1 / r^η`` of the 1-based position ``r`` on the page.

    Raises:
        ValueError: ``position < 1`` or ``eta < 0``.
    """
    if position < 1:
        raise ValueError(f"Positions start at 1, got {position}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    return 1.0 / position**eta


def decay_weight(age_seconds: float, half_life_days: float) -> float:
    """``0.5 ** (age / half_life)``; an event from the future (clock skew) weighs 1.

    Raises:
        ValueError: ``half_life_days <= 0``.
    """
    if half_life_days <= 0:
        raise ValueError(f"The half-life must be positive, got {half_life_days} days")
    return 0.5 ** (max(0.0, age_seconds) / (half_life_days * SECONDS_PER_DAY))


def smoothed_attractiveness(clicks: float, expected: float, *, prior_mean: float, strength: float) -> float:
    """Posterior mean ``(C + m·α₀) / (E + m)`` of a Beta(m·α₀, m·(1-α₀)) prior after ``C`` clicks in ``E`` expected clicks.

    Raises:
        ValueError: negative counts, ``strength <= 0`` or ``prior_mean`` outside (0, 1].
    """
    if clicks < 0 or expected < 0:
        raise ValueError(f"Counts must be >= 0, got clicks={clicks}, expected={expected}")
    if strength <= 0:
        raise ValueError(f"The prior strength must be positive, got {strength}")
    if not 0 < prior_mean <= 1:
        raise ValueError(f"The prior mean must be in (0, 1], got {prior_mean}")
    return (clicks + strength * prior_mean) / (expected + strength)


@dataclass
class Evidence:
    """Decayed click evidence of one (query, product) pair or one product.

    Attributes:
        impressions: times shown (decayed).
        expected: expected clicks ``Σ θ_r`` over those impressions (decayed).
        clicks: counted clicks (decayed), less those of the source (network) that contributed most.
        sessions: distinct vouched sources (networks; sessions where the network is unknown) with a
            counted click, each weighing its latest click's decay.
        networks: distinct vouched sources that saw it (undecayed); ``inf`` when not counted (full credit).
    """

    impressions: float = 0.0
    expected: float = 0.0
    clicks: float = 0.0
    sessions: float = 0.0
    networks: float = math.inf


@dataclass(frozen=True)
class PriorConfig:
    """Knobs of :func:`click_prior` (settings ``CLICK_PRIOR_STRENGTH``, ``CLICK_FULL_CREDIT_SESSIONS``)."""

    strength: float = 10.0
    full_credit_sessions: float = 5.0


def catalogue_mean(evidence: Iterable[Evidence]) -> float:
    """``α₀ = ΣC / ΣE`` over all products (capped to (0, 1]); :data:`DEFAULT_PRIOR_MEAN` without data."""
    rows = list(evidence)
    clicks = math.fsum(e.clicks for e in rows)  # exactly rounded: the same whatever the order of the rows
    expected = math.fsum(e.expected for e in rows)
    if expected <= 0 or clicks <= 0:
        return DEFAULT_PRIOR_MEAN
    return min(1.0, clicks / expected)


def click_boost(evidence: Evidence, *, prior_mean: float, config: PriorConfig = PriorConfig()) -> float:
    """The bounded boost in ``(-1, 1)``: ``(lift - 1) / (lift + 1)``, ``lift = α̃ / α₀``, times its credibility.

    A positive boost is scaled by ``min(1, sessions / S_full)`` (networks that clicked), a negative
    one by ``min(1, (networks - 1) / S_full)`` (vouched networks that saw it), ``S_full`` =
    ``config.full_credit_sessions`` (no scaling when it is 0).
    """
    smoothed = smoothed_attractiveness(evidence.clicks, evidence.expected, prior_mean=prior_mean, strength=config.strength)
    lift = smoothed / prior_mean
    boost = (lift - 1.0) / (lift + 1.0)
    full = config.full_credit_sessions
    if boost > 0 and full > 0:
        boost *= min(1.0, evidence.sessions / full)
    elif boost < 0 and full > 0:
        boost *= min(1.0, max(0.0, evidence.networks - 1.0) / full)
    return boost + 0.0  # -0.0 (no credit) is 0.0


def click_prior(evidence: Evidence, *, prior_mean: float, config: PriorConfig = PriorConfig()) -> float:
    """The click prior in ``[0, 1]``: ``(1 + boost) / 2``; 0.5 = no evidence either way."""
    return (1.0 + click_boost(evidence, prior_mean=prior_mean, config=config)) / 2.0


def boost_from_prior(prior: float) -> float:
    """Inverse of :func:`click_prior`'s last step: ``2 · prior - 1``, clipped to ``[-1, 1]``."""
    if not math.isfinite(prior):
        return 0.0
    return max(-1.0, min(1.0, 2.0 * prior - 1.0))


# -- aggregation of events -----------------------------------------------------------------------
@dataclass(frozen=True)
class ImpressionEvent:
    """One results page as recorded: ``product_ids[i]`` was shown at page position ``i + 1``; ``age_s`` seconds ago.

    ``network`` is the client's network hash (``""`` unknown: the session stands in for it).
    """

    id: int
    query: str
    session: str
    product_ids: Sequence[int]
    age_s: float
    network: str = ""

    @property
    def source(self) -> str:
        """What evidence is grouped by: the network, else the session."""
        return f"n:{self.network}" if self.network else f"s:{self.session}"


@dataclass(frozen=True)
class ClickEvent:
    """One counted click on ``product_id`` from impression ``impression_id``; ``age_s`` seconds ago.

    ``network`` is the clicking client's network hash (``""`` unknown: the session stands in for it).
    """

    impression_id: int
    query: str
    session: str
    product_id: int
    age_s: float
    network: str = ""

    @property
    def source(self) -> str:
        """What evidence is grouped by: the network, else the session."""
        return f"n:{self.network}" if self.network else f"s:{self.session}"


@dataclass
class Aggregates:
    """What :func:`aggregate` returns.

    Attributes:
        per_query: ``(query, product) -> Evidence`` for queries with enough traffic.
        per_product: ``product -> Evidence`` over every query (global popularity).
        query_sessions: ``query -> distinct vouched sources`` (networks, else sessions) that searched it (undecayed).
        prior_mean: the catalogue mean ``α₀`` over the per-product evidence.
    """

    per_query: dict[tuple[str, int], Evidence] = field(default_factory=dict)
    per_product: dict[int, Evidence] = field(default_factory=dict)
    query_sessions: dict[str, int] = field(default_factory=dict)
    prior_mean: float = DEFAULT_PRIOR_MEAN


def aggregate(
    impressions: Iterable[ImpressionEvent],
    clicks: Iterable[ClickEvent],
    *,
    half_life_days: float,
    eta: float = 1.0,
    query_min_sessions: int = 5,
    network_max_clicks: float | None = None,
    network_max_impressions: float | None = None,
) -> Aggregates:
    """Decayed impressions, expected clicks, clicks and distinct clicking sources per (query, product) and per product.

    Evidence is grouped by source (the network, else the session: :attr:`ImpressionEvent.source`).
    A source's impressions of a query count only once the source is *vouched for* on it: it
    clicked there a product that another source clicked too (on that query for the per-query
    table, on any query for the per-product table); the source of the page such a click came
    from is vouched for too. Per key and source the evidence is scaled by
    ``min(1, network_max_clicks / c, network_max_impressions / i)`` (click-through ratio and
    positions kept: a source weighs at most what that many shoppers weigh); then ``clicks`` leaves
    out the source with the most, ``sessions`` sums each vouched clicking source's latest decay weight, ``networks`` counts the sources whose
    impressions count. A key no counted impression reaches is left out (its product keeps its
    global score, or none). ``query_sessions`` counts the vouched sources of each query, and
    ``prior_mean`` is taken over the per-product evidence. So a source whose clicks no other
    source shares, or which never clicks, changes nothing at all. Photo-only impressions
    (query ``""``) count for the products' global popularity only.

    Args:
        impressions: every impression in the retention window.
        clicks: every *counted* click in it (the guards already removed the rest).
        half_life_days: time decay (see :func:`decay_weight`).
        eta: PBM exponent (see :func:`examination_probability`).
        query_min_sessions: a query needs this many vouched sources for per-query scores.
        network_max_clicks, network_max_impressions: most clicks / impressions (decayed) one source
            contributes to one key (``None``: no bound; settings ``CLICK_NETWORK_MAX_CLICKS``,
            ``CLICK_NETWORK_MAX_IMPRESSIONS``).

    Raises:
        ValueError: a bound that is not positive.
    """
    for bound in (network_max_clicks, network_max_impressions):
        if bound is not None and not bound > 0:
            raise ValueError(f"Per-network bounds must be positive, got {bound}")
    clicks = list(clicks)
    clicked = {c.impression_id for c in clicks}
    shown_to: dict[int, str] = {}  # source of each clicked impression (a shopper may click from another network)
    # per (query, product) and source: [impressions, expected, clicks, weight of the latest click] (decayed)
    pair_sources: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(dict)
    for imp in impressions:
        w = decay_weight(imp.age_s, half_life_days)
        if imp.id in clicked:
            shown_to[imp.id] = imp.source
        for i, pid in enumerate(imp.product_ids):
            entry = pair_sources[(imp.query, pid)].setdefault(imp.source, [0.0, 0.0, 0.0, 0.0])
            entry[0] += w
            entry[1] += w * examination_probability(i + 1, eta)
    for c in clicks:
        w = decay_weight(c.age_s, half_life_days)
        entry = pair_sources[(c.query, c.product_id)].setdefault(c.source, [0.0, 0.0, 0.0, 0.0])
        entry[2] += w
        entry[3] = max(entry[3], w)
    vouched_query, vouched_global = _vouched(pair_sources, clicks, shown_to)

    pairs: dict[tuple[str, int], Evidence] = {}
    product_sources: dict[int, dict[str, list[float]]] = defaultdict(dict)
    for (query, pid), sources in pair_sources.items():
        if query:
            counted = {s: e if s in vouched_query[query] else [0.0, 0.0, e[2], 0.0] for s, e in sources.items()}
            evidence = _evidence(counted, network_max_clicks, network_max_impressions)
            if evidence.networks:
                pairs[(query, pid)] = evidence
        merged = product_sources[pid]
        for s, e in sources.items():
            seen = s in vouched_global[query]
            entry = merged.setdefault(s, [0.0, 0.0, 0.0, 0.0])
            entry[0] += e[0] if seen else 0.0
            entry[1] += e[1] if seen else 0.0
            entry[2] += e[2]
            entry[3] = max(entry[3], e[3] if seen else 0.0)
    products = {pid: e for pid, sources in product_sources.items() if (e := _evidence(sources, network_max_clicks, network_max_impressions)).networks}
    query_sessions = {q: len(s) for q, s in vouched_query.items() if q}
    head = {q for q, n in query_sessions.items() if n >= query_min_sessions}
    return Aggregates(
        per_query={k: e for k, e in pairs.items() if k[0] in head},
        per_product=products,
        query_sessions=query_sessions,
        prior_mean=catalogue_mean(products.values()),
    )


def _vouched(
    pair_sources: dict[tuple[str, int], dict[str, list[float]]], clicks: list[ClickEvent], shown_to: dict[int, str]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per query, the sources whose impressions count: for the per-query table, those that clicked a product
    another source clicked on the same query (and the source of the page each such click came from);
    for the per-product table, the same with the product clicked on any query."""
    pair_clickers = {key: {s for s, e in sources.items() if e[2] > 0} for key, sources in pair_sources.items()}
    product_clickers: dict[int, set[str]] = defaultdict(set)
    for (_, pid), clickers in pair_clickers.items():
        product_clickers[pid] |= clickers
    vouched_query: dict[str, set[str]] = {query: set() for query, _ in pair_sources}  # every query shown, vouched for or not
    vouched_global: dict[str, set[str]] = {query: set() for query in vouched_query}
    for c in clicks:
        who = {c.source, shown_to.get(c.impression_id, c.source)}
        if len(pair_clickers[(c.query, c.product_id)]) >= 2:
            vouched_query[c.query] |= who
        if len(product_clickers[c.product_id]) >= 2:
            vouched_global[c.query] |= who
    return vouched_query, vouched_global


def _evidence(sources: dict[str, list[float]], max_clicks: float | None, max_impressions: float | None) -> Evidence:
    """One key's :class:`Evidence` from its per-source ``[impressions, expected, clicks, latest click weight]``
    (impressions 0 where the source's do not count): scaled per source, the top clicking source left out."""
    out = Evidence(networks=0.0)
    top_clicks = 0.0
    for impressions, expected, clicks, latest in sources.values():
        scale = 1.0
        if max_clicks is not None and clicks > max_clicks:
            scale = max_clicks / clicks
        if max_impressions is not None and impressions > max_impressions:
            scale = min(scale, max_impressions / impressions)
        out.impressions += impressions * scale
        out.expected += expected * scale
        out.clicks += clicks * scale
        top_clicks = max(top_clicks, clicks * scale)
        out.sessions += latest
        out.networks += impressions > 0
    out.clicks = max(0.0, out.clicks - top_clicks)
    return out
