"""What one network can contribute to the click aggregates, and what many networks still do (issue 11, point 7).

Real SQLite and the real services (:func:`search.clicks.services.impression_record`,
:func:`search.clicks.services.click_record`, :func:`search.clicks.aggregates.click_aggregates_refresh`);
shoppers are told apart by the addresses they come from. The same attack over HTTP on a real
server is ``tests/attacks/test_click_manipulation.py``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from search.clicks import aggregates, click_model, guards, services
from search.clicks.click_model import ClickEvent, ImpressionEvent
from search.clicks.models import ClickStat, SearchClick, SearchImpression
from search.clicks.selectors import click_priors
from shop.models import Product

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_a_network_is_the_slash_24_or_the_slash_64():
    assert guards.network_of("192.0.2.77") == guards.network_of("192.0.2.1") == "192.0.2.0/24"
    assert guards.network_of("192.0.3.1") == "192.0.3.0/24"
    assert guards.network_of("2001:db8:1:2:aaaa::1") == guards.network_of("2001:db8:1:2::ffff") == "2001:db8:1:2::/64"
    assert guards.network_of("::ffff:192.0.2.9") == "192.0.2.0/24"  # IPv4-mapped
    assert guards.network_of("fe80::1%eth0") == "fe80::/64"
    assert guards.network_of("") == guards.network_of("not an address") == guards.network_of(None) == ""


def test_the_network_is_stored_only_as_an_hmac():
    digest = guards.network_hash("192.0.2.77")
    assert digest == guards.network_hash("192.0.2.200") and digest != guards.network_hash("192.0.3.77")
    assert len(digest) == 64 and "192.0.2" not in digest
    assert guards.network_hash("") == ""


def _many_sessions_one_network(n: int, *, click: int | None) -> tuple[list[ImpressionEvent], list[ClickEvent]]:
    imps = [ImpressionEvent(i, "towel", f"s{i}", [10, 20, 30], age_s=0, network="net-a") for i in range(n)]
    clicks = [ClickEvent(i, "towel", f"s{i}", click, age_s=0, network="net-a") for i in range(n)] if click else []
    return imps, clicks


def test_one_network_with_any_number_of_sessions_moves_no_score():
    config = click_model.PriorConfig(strength=10, full_credit_sessions=5)
    for click in (30, None):  # 110 sessions clicking the third result; 300 views without a click
        imps, clicks = _many_sessions_one_network(110 if click else 300, click=click)
        agg = click_model.aggregate(imps, clicks, half_life_days=14, query_min_sessions=5, network_max_clicks=1, network_max_impressions=1)
        assert agg.query_sessions == {"towel": 1} and agg.per_query == {}  # one network: not a head query
        for pid, evidence in agg.per_product.items():
            assert evidence.clicks == 0.0 and evidence.networks == 1
            assert evidence.impressions == pytest.approx(1.0) and evidence.expected <= 1.0 + 1e-9  # one shopper's worth
            assert click_model.click_prior(evidence, prior_mean=0.1, config=config) == 0.5, pid


def test_a_network_weighs_at_most_its_bound_beside_others():
    """Six networks each click once; a seventh sends 100 views and 100 clicks: it weighs what one more shopper weighs."""
    imps = [ImpressionEvent(i, "towel", f"s{i}", [10, 20], age_s=0, network=f"net-{i}") for i in range(6)]
    imps += [ImpressionEvent(100 + i, "towel", f"x{i}", [10, 20], age_s=0, network="net-x") for i in range(100)]
    clicks = [ClickEvent(i, "towel", f"s{i}", 20, age_s=0, network=f"net-{i}") for i in range(6)]
    honest = click_model.aggregate(imps[:6], clicks, half_life_days=14, network_max_clicks=1, network_max_impressions=1)
    flooded = click_model.aggregate(
        imps, clicks + [ClickEvent(100 + i, "towel", f"x{i}", 20, age_s=0, network="net-x") for i in range(100)],
        half_life_days=14, network_max_clicks=1, network_max_impressions=1,
    )
    assert honest.per_query[("towel", 20)].clicks == pytest.approx(5.0)  # six, less the top one
    assert flooded.per_query[("towel", 20)].clicks == pytest.approx(6.0)  # the flood counts as one more network
    assert flooded.per_query[("towel", 20)].sessions == pytest.approx(7.0)
    assert flooded.per_query[("towel", 20)].expected - honest.per_query[("towel", 20)].expected == pytest.approx(0.5)  # one view at 2
    assert flooded.per_query[("towel", 20)].impressions - honest.per_query[("towel", 20)].impressions == pytest.approx(1.0)


def test_impressions_from_several_networks_still_demote():
    imps = [ImpressionEvent(i, "towel", f"s{i}", [10, 20], age_s=0, network=f"net-{i}") for i in range(8)]
    clicks = [ClickEvent(i, "towel", f"s{i}", 20, age_s=0, network=f"net-{i}") for i in range(8)]
    agg = click_model.aggregate(imps, clicks, half_life_days=14, network_max_clicks=1, network_max_impressions=1)
    never_clicked = agg.per_query[("towel", 10)]
    assert never_clicked.networks == 8
    assert click_model.click_prior(never_clicked, prior_mean=agg.prior_mean) < 0.5


@pytest.mark.django_db
def test_many_networks_lift_a_product_and_the_same_shoppers_behind_one_network_do_not(settings):
    products = Product.objects.bulk_create(Product(title=f"Cotton towel {i}", price=10 + i) for i in range(4))
    ids = [p.pk for p in products]
    now = timezone.now() - timedelta(hours=1)

    def shoppers(address) -> list[bool]:
        counted = []
        for s in range(8):
            key = f"shopper-{address(0)}-{s}"
            token = services.impression_record(query="cotton towel", product_ids=ids, session_key=key, user_agent=BROWSER, ip=address(s),
                                               now=now + timedelta(minutes=s)).token
            counted.append(services.click_record(token=token, product_id=ids[2], position=3, session_key=key, user_agent=BROWSER,
                                                 ip=address(s), now=now + timedelta(minutes=s, seconds=5)).counted)
        return counted

    # when: eight shoppers, each from a network of its own
    assert shoppers(lambda s: f"198.51.{s}.7") == [True] * 8
    aggregates.click_aggregates_refresh()
    # then: the clicked product is lifted, for the query and globally
    lifted = click_priors(text="cotton towel", product_ids=ids)
    assert lifted[ids[2]] > 0.6
    assert ClickStat.objects.get(query="", product_id=ids[2]).sessions == pytest.approx(8, abs=0.05)  # eight networks, an hour of decay

    # when: instead, eight shoppers behind one /24 (new sessions, different addresses)
    SearchClick.objects.all().delete()
    SearchImpression.objects.all().delete()
    cache.clear()
    counted = shoppers(lambda s: f"203.0.113.{10 + s}")
    aggregates.click_aggregates_refresh()
    # then: three clicks counted (CLICK_NETWORK_PRODUCT_CAP), the rest refused, and no score moved
    assert counted == [True] * settings.CLICK_NETWORK_PRODUCT_CAP + [False] * (8 - settings.CLICK_NETWORK_PRODUCT_CAP)
    assert set(SearchClick.objects.filter(counted=False).values_list("discard_reason", flat=True)) == {"network_cap"}
    assert all(prior == 0.5 for prior in click_priors(text="cotton towel", product_ids=ids).values())
    assert len(set(SearchImpression.objects.values_list("network_hash", flat=True))) == 1
