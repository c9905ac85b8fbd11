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

**Robustness to one session.** Clicks are counted at most once per session, query and product
and window (:func:`search.clicks.services.click_record`), yet one session's click would still move a
score. So ``C`` leaves out the session that contributed most (leave-top-session-out): a click
starts to count when a *second* session clicks the same product, and a single shopper, or a
single attacker, never moves a score on their own. And a *positive* boost is scaled by
``min(1, S / S_full)``, ``S`` the (decayed) number of distinct sessions that clicked.

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
        clicks: counted clicks (decayed), less those of the session that contributed most.
        sessions: distinct sessions with a counted click, each weighing its latest click's decay.
    """

    impressions: float = 0.0
    expected: float = 0.0
    clicks: float = 0.0
    sessions: float = 0.0


@dataclass(frozen=True)
class PriorConfig:
    """Knobs of :func:`click_prior` (settings ``CLICK_PRIOR_STRENGTH``, ``CLICK_FULL_CREDIT_SESSIONS``)."""

    strength: float = 10.0
    full_credit_sessions: float = 5.0


def catalogue_mean(evidence: Iterable[Evidence]) -> float:
    """``α₀ = ΣC / ΣE`` over all products (capped to (0, 1]); :data:`DEFAULT_PRIOR_MEAN` without data."""
    clicks = expected = 0.0
    for e in evidence:
        clicks += e.clicks
        expected += e.expected
    if expected <= 0 or clicks <= 0:
        return DEFAULT_PRIOR_MEAN
    return min(1.0, clicks / expected)


def click_boost(evidence: Evidence, *, prior_mean: float, config: PriorConfig = PriorConfig()) -> float:
    """The bounded boost in ``(-1, 1)``: ``(lift - 1) / (lift + 1)``, ``lift = α̃ / α₀``; positive values × credibility."""
    smoothed = smoothed_attractiveness(evidence.clicks, evidence.expected, prior_mean=prior_mean, strength=config.strength)
    lift = smoothed / prior_mean
    boost = (lift - 1.0) / (lift + 1.0)
    if boost > 0:
        boost *= min(1.0, evidence.sessions / config.full_credit_sessions) if config.full_credit_sessions > 0 else 1.0
    return boost


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
    """One results page as recorded: ``product_ids[i]`` was shown at page position ``i + 1``; ``age_s`` seconds ago."""

    id: int
    query: str
    session: str
    product_ids: Sequence[int]
    age_s: float


@dataclass(frozen=True)
class ClickEvent:
    """One counted click on ``product_id`` from impression ``impression_id``; ``age_s`` seconds ago."""

    impression_id: int
    query: str
    session: str
    product_id: int
    age_s: float


@dataclass
class Aggregates:
    """What :func:`aggregate` returns.

    Attributes:
        per_query: ``(query, product) -> Evidence`` for queries with enough traffic.
        per_product: ``product -> Evidence`` over every query (global popularity).
        query_sessions: ``query -> distinct sessions`` that searched it (undecayed).
        prior_mean: the catalogue mean ``α₀``.
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
) -> Aggregates:
    """Decayed impressions, expected clicks, clicks and distinct clicking sessions per (query, product) and per product.

    Photo-only impressions (query ``""``) count for the products' global popularity only.

    Args:
        impressions: every impression in the retention window.
        clicks: every *counted* click in it (the guards already removed the rest).
        half_life_days: time decay (see :func:`decay_weight`).
        eta: PBM exponent (see :func:`examination_probability`).
        query_min_sessions: a query needs this many distinct searching sessions for per-query scores.
    """
    pairs: dict[tuple[str, int], Evidence] = defaultdict(Evidence)
    products: dict[int, Evidence] = defaultdict(Evidence)
    searched: dict[str, set[str]] = defaultdict(set)
    for imp in impressions:
        w = decay_weight(imp.age_s, half_life_days)
        if imp.query:
            searched[imp.query].add(imp.session)
        for i, pid in enumerate(imp.product_ids):
            theta = w * examination_probability(i + 1, eta)
            for e in ((pairs[(imp.query, pid)], products[pid]) if imp.query else (products[pid],)):
                e.impressions += w
                e.expected += theta
    # per key and session: [decayed clicks, weight of the session's latest click]
    pair_sessions: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(dict)
    product_sessions: dict[int, dict[str, list[float]]] = defaultdict(dict)
    for c in clicks:
        w = decay_weight(c.age_s, half_life_days)
        for seen in (product_sessions[c.product_id], pair_sessions[(c.query, c.product_id)] if c.query else None):
            if seen is None:
                continue
            entry = seen.setdefault(c.session, [0.0, 0.0])
            entry[0] += w
            entry[1] = max(entry[1], w)
    for table, sessions_of in ((pairs, pair_sessions), (products, product_sessions)):
        for key, sessions in sessions_of.items():
            clicks_by_session = [v[0] for v in sessions.values()]
            table[key].clicks = sum(clicks_by_session) - max(clicks_by_session)
            table[key].sessions = sum(v[1] for v in sessions.values())
    query_sessions = {q: len(s) for q, s in searched.items()}
    head = {q for q, n in query_sessions.items() if n >= query_min_sessions}
    return Aggregates(
        per_query={k: e for k, e in pairs.items() if k[0] in head},
        per_product=dict(products),
        query_sessions=query_sessions,
        prior_mean=catalogue_mean(products.values()),
    )
