"""The click model (search.clicks.click_model) and the click prior in the blend (search.hybrid), against hand-computed values."""

from __future__ import annotations

import math

import pytest

from search.backends.base import Hit
from search.clicks import click_model
from search.clicks.click_model import ClickEvent, Evidence, ImpressionEvent, PriorConfig
from search.hybrid import click_prior, fusion

DAY = 86_400.0


def test_examination_probability_is_one_over_rank_to_the_eta():
    assert click_model.examination_probability(1) == 1.0
    assert click_model.examination_probability(4) == 0.25
    assert click_model.examination_probability(4, eta=2.0) == 1 / 16
    assert click_model.examination_probability(7, eta=0.0) == 1.0
    with pytest.raises(ValueError, match="Positions start at 1"):
        click_model.examination_probability(0)


def test_decay_halves_the_weight_every_half_life():
    assert click_model.decay_weight(0, 14) == 1.0
    assert click_model.decay_weight(14 * DAY, 14) == pytest.approx(0.5)
    assert click_model.decay_weight(28 * DAY, 14) == pytest.approx(0.25)
    assert click_model.decay_weight(7 * DAY, 14) == pytest.approx(2 ** -0.5)
    assert click_model.decay_weight(-5 * DAY, 14) == 1.0  # clock skew: never more than 1
    with pytest.raises(ValueError, match="half-life"):
        click_model.decay_weight(1, 0)


def test_smoothing_is_the_beta_posterior_mean():
    # (C + m·α0) / (E + m) = (3 + 10·0.2) / (5 + 10) = 5 / 15
    assert click_model.smoothed_attractiveness(3, 5, prior_mean=0.2, strength=10) == pytest.approx(1 / 3)
    # no evidence: exactly the catalogue mean
    assert click_model.smoothed_attractiveness(0, 0, prior_mean=0.2, strength=10) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        click_model.smoothed_attractiveness(-1, 0, prior_mean=0.2, strength=10)


def test_one_click_on_a_new_product_is_not_a_signal():
    # One click on a product shown once at position 1 (E = 1): raw COEC would be 1/1 = 5x the
    # mean; smoothed (1 + 2) / (1 + 10) = 0.2727, lift 1.364, boost 0.364/2.364 = 0.154, and one
    # session out of 5 for full credit -> 0.0308, prior 0.5154.
    ev = Evidence(impressions=1, expected=1, clicks=1, sessions=1)
    boost = click_model.click_boost(ev, prior_mean=0.2, config=PriorConfig(strength=10, full_credit_sessions=5))
    lift = (3 / 11) / 0.2
    assert boost == pytest.approx((lift - 1) / (lift + 1) / 5)
    assert boost == pytest.approx(0.03077, abs=1e-5)
    assert click_model.click_prior(ev, prior_mean=0.2, config=PriorConfig(10, 5)) == pytest.approx(0.5 + boost / 2)


def test_many_sessions_clicking_give_a_strong_prior_and_no_clicks_a_weak_one():
    cfg = PriorConfig(strength=10, full_credit_sessions=5)
    liked = Evidence(impressions=40, expected=20, clicks=12, sessions=12)  # α̃ = (12+2)/30 = 0.4667, lift 2.33
    ignored = Evidence(impressions=40, expected=20, clicks=0, sessions=0)  # α̃ = 2/30, lift 0.333
    assert click_model.click_prior(liked, prior_mean=0.2, config=cfg) == pytest.approx((7 / 3) / (1 + 7 / 3))
    assert click_model.click_prior(ignored, prior_mean=0.2, config=cfg) == pytest.approx((1 / 3) / (1 + 1 / 3))
    assert click_model.click_prior(Evidence(), prior_mean=0.2, config=cfg) == 0.5


def test_aggregate_counts_expected_clicks_by_position_with_decay():
    impressions = [
        ImpressionEvent(1, "towel", "s1", [10, 20], age_s=0),
        ImpressionEvent(2, "towel", "s2", [20, 10], age_s=14 * DAY),  # weighs 0.5
        ImpressionEvent(3, "", "s3", [10, 20], age_s=0),  # photo query: global only
    ]
    clicks = [ClickEvent(1, "towel", "s1", 20, age_s=0), ClickEvent(2, "towel", "s2", 20, age_s=14 * DAY), ClickEvent(3, "", "s3", 20, age_s=0)]
    agg = click_model.aggregate(impressions, clicks, half_life_days=14, eta=1.0, query_min_sessions=2)
    p20 = agg.per_query[("towel", 20)]
    assert p20.expected == pytest.approx(1 / 2 + 0.5 * 1)  # position 2 now, position 1 a half-life ago
    assert p20.clicks == pytest.approx(0.5)  # 1 + 0.5, less the top session's 1
    assert p20.sessions == pytest.approx(1.5)
    assert agg.per_query[("towel", 10)].expected == pytest.approx(1 + 0.5 / 2)
    assert agg.per_product[10].expected == pytest.approx(1 + 0.25 + 1)  # plus the photo query
    assert agg.per_product[10].impressions == pytest.approx(2.5)
    assert agg.per_product[20].clicks == pytest.approx(1.5)  # 1 + 0.5 + 1, less the top session's 1
    assert agg.prior_mean == pytest.approx(1.5 / (2.25 + 1.5))
    assert agg.query_sessions == {"towel": 2}


def test_quiet_queries_get_no_per_query_scores():
    impressions = [ImpressionEvent(1, "rare", "s1", [10], age_s=0)]
    agg = click_model.aggregate(impressions, [], half_life_days=14, query_min_sessions=2)
    assert agg.per_query == {}
    assert agg.per_product == {}  # a page nobody clicked changes no score, not even the global one
    assert agg.query_sessions == {"rare": 0}


def test_query_key_normalises():
    assert click_model.query_key("  Cotton   TOWEL\u200b ") == "cotton towel"
    assert click_model.query_key(None) == ""


# -- the click prior in the blend ------------------------------------------------------------------------
def _fused(n: int) -> list[fusion.FusedResult]:
    hits = [Hit(i, 1.0 - i / 100) for i in range(1, n + 1)]
    return fusion.blend({"bm25": hits, "text_knn": hits}, method="rrf", rrf_k=60)


def test_click_prior_adds_weight_times_scale_times_boost_and_shows_in_the_explanation():
    fused = _fused(3)
    out = click_prior.apply_click_prior(fused, {3: 1.0, 1: 0.25}, weight=1.0, scale=1 / 61, max_lift=None)
    by_id = {r.id: r for r in out}
    assert by_id[3].score == pytest.approx(2 / 63 + 1 / 61)
    assert by_id[1].score == pytest.approx(2 / 61 - 0.5 / 61)
    explained = by_id[3].explain()
    assert explained["clicks"] == {"raw": 1.0, "rank": 1, "contribution": round(1 / 61, 6)}
    assert "clicks" not in by_id[2].explain()
    assert [r.id for r in out] == [3, 2, 1]


def _with_clicks(rankings, *, method: str, weights: dict, priors: dict, max_lift=None, max_drop=None):
    """Fuse, then add the click prior as the pipeline does (``search.hybrid.pipeline.click_prior_apply``)."""
    fused = fusion.blend(rankings, method=method, weights=weights, rrf_k=60)
    return click_prior.apply_click_prior(
        fused, priors, weight=weights["clicks"], scale=click_prior.click_prior_scale(method, 60), max_lift=max_lift, max_drop=max_drop,
    )


def test_the_click_prior_lifts_a_product_at_most_max_lift_ranks():
    fused = _fused(20)
    out = _with_clicks(
        {"bm25": [Hit(i, 1.0) for i in range(1, 21)], "text_knn": [Hit(i, 1.0) for i in range(1, 21)]},
        method="rrf", weights={"clicks": 5.0}, priors={20: 1.0}, max_lift=3,
    )
    assert [r.id for r in fused][19] == 20
    assert [r.id for r in out].index(20) == 16  # from rank 20 to rank 17, not to the top
    uncapped = _with_clicks(
        {"bm25": [Hit(i, 1.0) for i in range(1, 21)], "text_knn": [Hit(i, 1.0) for i in range(1, 21)]},
        method="rrf", weights={"clicks": 5.0}, priors={20: 1.0}, max_lift=None,
    )
    assert uncapped[0].id == 20


def test_cap_lift_keeps_every_product_within_the_cap():
    base = list(range(10))
    desired = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    out = click_prior.cap_lift(base, desired, 2)
    assert sorted(out) == base
    for new_rank, pid in enumerate(out):
        assert base.index(pid) - new_rank <= 2
    assert out == [2, 3, 4, 5, 6, 7, 8, 9, 1, 0]  # each rises by 2 at most; the reversed tail falls
    assert click_prior.cap_lift(base, desired, 0) == base
    assert click_prior.cap_lift(base, desired, 100) == desired


def test_a_zero_click_weight_changes_nothing():
    fused = _fused(5)
    out = click_prior.apply_click_prior(fused, {5: 1.0}, weight=0.0, scale=1.0, max_lift=None)
    assert [r.id for r in out] == [r.id for r in fused]
    assert math.isclose(out[4].score, fused[4].score)


def test_linear_fusion_adds_the_unscaled_boost():
    hits = [Hit(1, 3.0), Hit(2, 1.0)]
    out = _with_clicks({"bm25": hits}, method="linear", weights={"clicks": 0.5}, priors={2: 1.0})
    assert {r.id: round(r.score, 6) for r in out} == {1: 1.0, 2: 0.5}


def test_cap_lift_also_bounds_how_far_a_product_falls():
    base = list(range(10))
    desired = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    out = click_prior.cap_lift(base, desired, 2, 2)
    assert sorted(out) == base
    for new_rank, pid in enumerate(out):
        assert -2 <= base.index(pid) - new_rank <= 2
    assert out[0] == 2 and out[2] == 0  # 0 falls due at position 2


def test_one_session_alone_never_moves_a_score():
    """Leave-top-session-out: however often one session clicks, its clicks do not count alone."""
    imps = [ImpressionEvent(i, "towel", f"s{i}", [10, 20], age_s=0) for i in range(5)]
    attacker = [ClickEvent(0, "towel", "s0", 20, age_s=i * DAY) for i in range(30)]  # one click per window for a month
    agg = click_model.aggregate(imps, attacker, half_life_days=14, query_min_sessions=1)
    assert agg.per_query == {} and agg.per_product == {}  # clicks nobody else shares vouch for no one: no score at all
    assert agg.query_sessions == {"towel": 0}
    two = click_model.aggregate(imps, attacker + [ClickEvent(1, "towel", "s1", 20, age_s=0)], half_life_days=14, query_min_sessions=1)
    assert two.per_query[("towel", 20)].clicks == pytest.approx(1.0)  # the second session counts
