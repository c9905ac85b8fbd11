"""Search events end to end: impressions, clicks through every abuse guard, aggregates, retention, status, analytics.

Real SQLite, real cache, real HTTP handling through Django's test client; the end-to-end ranking
test uses the real encoders and engine on the Flipkart sample (``indexed_catalog``).
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from search.clicks import aggregates, guards, services
from search.clicks.models import ClickStat, EventDiscard, PhotoReference, SearchClick, SearchImpression
from search.clicks.selectors import click_priors, photo_refs_reset, photo_refs_search
from shop.models import Product
from shop.state import state_cache

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    state_cache().clear()  # the click guards' rate-limit counters (shop.state)
    photo_refs_reset()
    yield
    cache.clear()
    state_cache().clear()
    photo_refs_reset()


@pytest.fixture
def products():
    return [Product.objects.create(title=f"Cotton towel {i}", price=100 + i) for i in range(6)]


def shopper(ip: str = "198.51.100.7") -> tuple[Client, str]:
    client = Client(HTTP_USER_AGENT=BROWSER, REMOTE_ADDR=ip)
    session = client.session
    session.save()
    return client, session.session_key


def show(session_key: str, products, *, query: str = "cotton towel", now=None, **kw) -> services.RecordedImpression:
    return services.impression_record(
        query=query, product_ids=[p.pk for p in products], session_key=session_key, user_agent=BROWSER, now=now, **kw
    )


def beacon(client: Client, payload, **extra):
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return client.post("/events/click", data=body, content_type="text/plain", **extra)


def discards(reason: str) -> int:
    return sum(EventDiscard.objects.filter(kind="click", reason=reason).values_list("count", flat=True))


# -- impressions ---------------------------------------------------------------------------------------------
def test_an_impression_keeps_a_hashed_session_and_the_page_positions(products):
    _, key = shopper()
    recorded = show(key, products[:3], query="  Cotton   TOWEL ", page=2, per_page=3, total=40)
    imp = recorded.impression
    assert imp.query == "cotton towel"
    assert imp.session_hash != key and len(imp.session_hash) == 64 and key not in imp.session_hash
    assert imp.position_of(products[1].pk) == 5  # page 2 of 3 per page: positions 4, 5, 6
    assert imp.total == 40
    assert services.impression_id_from_token(recorded.token) == imp.pk


def test_bots_leave_no_impression(products):
    recorded = services.impression_record(
        query="towel", product_ids=[products[0].pk], session_key="s",
        user_agent="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    )
    assert recorded.impression is None and recorded.reason == "bot"
    assert SearchImpression.objects.count() == 0
    assert EventDiscard.objects.get(kind="impression", reason="bot").count == 1


def test_impression_record_for_page_uses_the_request_session(rf, products):
    from django.contrib.sessions.middleware import SessionMiddleware

    from search.backends.base import SearchFilters
    from search.request import SearchRequest
    from search.selectors import SearchPage

    request = rf.get("/search/?q=towel", HTTP_USER_AGENT=BROWSER)
    SessionMiddleware(lambda r: None).process_request(request)
    request.session.save()  # a visitor with a session (a first-time visitor gets no row: test_impressions_anonymous.py)
    page = SearchPage(products=products[:2], total=2, page=1, per_page=24)
    token = services.impression_record_for_page(request=request, search=SearchRequest("towel", None, SearchFilters(brands=("Acme",))), page=page)
    imp = SearchImpression.objects.get(pk=services.impression_id_from_token(token))
    assert imp.product_ids == [products[0].pk, products[1].pk]
    assert imp.filters == {"brands": ["Acme"]}
    assert imp.session_hash == guards.session_hash(request.session.session_key)


# -- clicks: the happy paths ------------------------------------------------------------------------------------
def test_a_beacon_click_counts_once(products):
    client, key = shopper()
    token = show(key, products).token
    response = beacon(client, {"impression_id": token, "product_id": products[2].pk, "position": 3})
    assert response.status_code == 204
    click = SearchClick.objects.get()
    assert click.counted and click.position == 3 and click.session_hash != key


def test_the_redirect_endpoint_counts_and_sends_the_shopper_to_the_product(products):
    client, key = shopper()
    token = show(key, products).token
    response = client.get(f"/events/click/{token}/{products[1].pk}/")
    assert response.status_code == 302
    assert SearchClick.objects.get().counted
    forged = client.get(f"/events/click/{token[:-2]}xx/{products[1].pk}/")
    assert forged.status_code == 302  # the shopper still gets the product ...
    assert SearchClick.objects.count() == 1 and discards("bad_token") == 1  # ... and nothing counts
    assert client.get(f"/events/click/{token}/999999/").status_code == 404


def test_a_signed_in_shopper_beacon_needs_no_csrf_token(products, django_user_model):
    client = Client(HTTP_USER_AGENT=BROWSER, enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("shopper", password="pw"))
    token = show(client.session.session_key, products).token

    response = beacon(client, {"impression_id": token, "product_id": products[0].pk, "position": 1})

    assert response.status_code == 204 and SearchClick.objects.get().counted


def test_the_redirect_serves_a_browser_whatever_it_accepts_and_head_counts_nothing(products):
    client, key = shopper()
    token = show(key, products).token

    head = client.head(f"/events/click/{token}/{products[1].pk}/")
    clicks_after_head = SearchClick.objects.count()
    html_only = client.get(f"/events/click/{token}/{products[1].pk}/", HTTP_ACCEPT="text/html")

    assert head.status_code == 405 and clicks_after_head == 0  # link prefetchers send HEAD
    assert html_only.status_code == 302 and "no-cache" in html_only["Cache-Control"]
    assert SearchClick.objects.get().counted


def test_a_mangled_or_out_of_range_product_id_is_a_json_404_not_a_crash(products):
    client, key = shopper()
    token = show(key, products).token

    posted = beacon(client, {"impression_id": token, "product_id": 2**70, "position": 1})
    superscript = beacon(client, {"impression_id": token, "product_id": "²", "position": 1})

    mangled_links = (
        f"/events/click/{token}/{2**70}/", f"/events/click/{token}/-1/", f"/events/click/{token}/²/",
        f"/events/click/a/b/{products[0].pk}x/",
    )
    for path in mangled_links:
        mangled = client.get(path)
        assert mangled.status_code == 404 and mangled.json() == {"counted": False, "reason": "unknown_product"}, path
    assert posted.status_code == 404 and posted.json() == {"counted": False, "reason": "unknown_product"}
    assert superscript.status_code == 400 and superscript.json() == {"counted": False, "reason": "malformed"}


# -- clicks: each guard ------------------------------------------------------------------------------------------
def test_a_replayed_click_is_refused_and_not_counted(products):
    client, key = shopper()
    token = show(key, products).token
    payload = {"impression_id": token, "product_id": products[0].pk, "position": 1}
    assert beacon(client, payload).status_code == 204
    again = beacon(client, payload)
    assert again.status_code == 409 and again.json() == {"counted": False, "reason": "duplicate"}
    # a new search of the same query in the window does not reset it either
    token2 = show(key, products).token
    assert beacon(client, {**payload, "impression_id": token2}).status_code == 409
    assert SearchClick.objects.filter(counted=True).count() == 1
    assert discards("duplicate") == 2


def test_the_same_product_counts_again_after_the_dedup_window(products, settings):
    _, key = shopper()
    t0 = timezone.now()
    for day in (0, 2):
        now = t0 + timedelta(days=day)
        token = show(key, products, now=now).token
        assert services.click_record(token=token, product_id=products[0].pk, position=1, session_key=key, user_agent=BROWSER, now=now).counted


def test_a_session_over_its_rate_limit_is_refused(products, settings):
    settings.CLICK_RATE_PER_SESSION = 3
    client, key = shopper()
    token = show(key, products).token
    codes = [beacon(client, {"impression_id": token, "product_id": p.pk, "position": i + 1}).status_code for i, p in enumerate(products[:5])]
    assert codes == [204, 204, 204, 429, 429]
    assert discards("rate_session") == 2
    assert SearchClick.objects.count() == 3  # rate-limited clicks leave no row


def test_an_ip_over_its_rate_limit_is_refused_and_never_stored(products, settings):
    settings.CLICK_RATE_PER_IP = 2
    codes = []
    for _ in range(3):
        client, key = shopper(ip="203.0.113.77")
        token = show(key, products).token
        codes.append(beacon(client, {"impression_id": token, "product_id": products[0].pk, "position": 1}).status_code)
    assert codes == [204, 204, 429]
    assert discards("rate_ip") == 1
    with connection.cursor() as cur:
        for table in ("search_searchimpression", "search_searchclick", "search_eventdiscard", "django_session"):
            cur.execute(f"SELECT * FROM {table}")
            assert "203.0.113.77" not in repr(cur.fetchall())


def test_known_bots_are_ignored(products):
    client, key = shopper()
    token = show(key, products).token
    response = beacon(client, {"impression_id": token, "product_id": products[0].pk, "position": 1}, HTTP_USER_AGENT="python-requests/2.32")
    assert response.status_code == 403 and response.json()["reason"] == "bot"
    assert not SearchClick.objects.exists()


def test_a_click_from_another_session_than_the_impression_is_not_counted(products):
    _, key = shopper()
    token = show(key, products).token
    other, _ = shopper()
    response = beacon(other, {"impression_id": token, "product_id": products[0].pk, "position": 1})
    assert response.status_code == 403 and response.json()["reason"] == "session_mismatch"
    assert SearchClick.objects.get().counted is False


def test_a_product_over_its_click_cap_stops_counting(products, settings):
    settings.CLICK_PRODUCT_CAP = 2
    codes = []
    for i in range(3):
        client, key = shopper(ip=f"198.51.100.{i}")
        token = show(key, products).token
        codes.append(beacon(client, {"impression_id": token, "product_id": products[4].pk, "position": 5}).status_code)
    assert codes == [204, 204, 429]
    assert SearchClick.objects.get(counted=False).discard_reason == "product_cap"


def test_an_old_impression_takes_no_clicks(products, settings):
    _, key = shopper()
    then = timezone.now() - timedelta(seconds=settings.CLICK_IMPRESSION_MAX_AGE_S + 60)
    token = show(key, products, now=then).token
    outcome = services.click_record(token=token, product_id=products[0].pk, position=1, session_key=key, user_agent=BROWSER)
    assert (outcome.counted, outcome.reason, outcome.status) == (False, "expired", 410)


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        ("{not json", 400, "malformed"),
        (json.dumps([1, 2]), 400, "malformed"),
        (json.dumps({"product_id": 1, "position": 1}), 400, "malformed"),
        ("TOKEN:{pid}:0", 400, "malformed"),  # position out of range
        ("TOKEN:{pid}:-3", 400, "malformed"),
        ("TOKEN:{pid}:true", 400, "malformed"),
        ("FORGED:{pid}:1", 400, "bad_token"),
        ("MISSING:{pid}:1", 404, "unknown_impression"),
        ("TOKEN:999999:1", 404, "unknown_product"),
        ("TOKEN:{other}:1", 400, "not_in_impression"),
        ("TOKEN:{pid}:2", 400, "position_mismatch"),
    ],
)
def test_forged_and_malformed_clicks_get_a_4xx_and_change_no_statistic(products, payload, status, reason):
    client, key = shopper()
    token = show(key, products[:3]).token
    if payload.count(":") == 2 and payload.split(":")[0].isupper():
        kind, pid, pos = payload.split(":")
        pid = pid.format(pid=products[0].pk, other=products[5].pk)
        tok = {"TOKEN": token, "FORGED": token[:-3] + "abc", "MISSING": services.impression_token(987654)}[kind]
        value = True if pos == "true" else int(pos)
        payload = json.dumps({"impression_id": tok, "product_id": int(pid), "position": value})
    response = beacon(client, payload)
    assert response.status_code == status
    assert response.json() == {"counted": False, "reason": reason}
    assert discards(reason) == 1
    assert not SearchClick.objects.filter(counted=True).exists()
    aggregates.click_aggregates_refresh()  # aggregation is not broken by the attempt
    assert ClickStat.objects.filter(clicks__gt=0).count() == 0


def test_huge_payloads_are_refused_before_they_are_read(products):
    client, key = shopper()
    token = show(key, products).token
    response = beacon(client, json.dumps({"impression_id": token, "product_id": products[0].pk, "position": 1, "pad": "x" * 50_000}))
    assert response.status_code == 413 and response.json()["reason"] == "too_large"
    assert client.get("/events/click").status_code == 405


# -- photo references -------------------------------------------------------------------------------------------
def test_a_click_after_a_photo_query_adds_a_capped_reference(products, settings):
    settings.PHOTO_REFS_PER_PRODUCT = 2
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 1280)).astype(np.float32)
    for i, vec in enumerate(vectors):
        _, key = shopper(ip=f"192.0.2.{i}")
        now = timezone.now() + timedelta(minutes=i)
        token = show(key, products, query="", image_vector=vec, now=now).token
        services.click_record(token=token, product_id=products[3].pk, position=4, session_key=key, user_agent=BROWSER, now=now)
        services.click_record(token=token, product_id=products[2].pk, position=3, session_key=key, user_agent=BROWSER, now=now)
    refs = PhotoReference.objects.filter(product=products[3])
    assert refs.count() == 2  # capped, the oldest dropped
    assert not PhotoReference.objects.filter(product=products[2]).exists()  # one reference per photo query
    hits = photo_refs_search(vectors[2] / np.linalg.norm(vectors[2]), k=5)
    assert hits[0].id == products[3].pk and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert photo_refs_search(vectors[0] / np.linalg.norm(vectors[0]), k=5)[0].score < 0.2  # evicted


def test_text_clicks_leave_no_photo_reference(products):
    _, key = shopper()
    token = show(key, products).token
    services.click_record(token=token, product_id=products[0].pk, position=1, session_key=key, user_agent=BROWSER)
    assert not PhotoReference.objects.exists()


# -- aggregates, retention, status, analytics ----------------------------------------------------------------
def test_refresh_turns_clicks_into_priors_per_query_and_per_product(products, settings):
    settings.CLICK_QUERY_MIN_SESSIONS = 3
    now = timezone.now()
    for i in range(4):
        _, key = shopper(ip=f"198.51.100.{i}")
        token = show(key, products, now=now).token
        services.click_record(token=token, product_id=products[3].pk, position=4, session_key=key, user_agent=BROWSER, now=now)
    _, key = shopper()
    show(key, products, query="rare words", now=now)
    report = aggregates.click_aggregates_refresh(now=now)
    assert (report.impressions, report.clicks, report.head_queries) == (5, 4, 1)
    stat = ClickStat.objects.get(query="cotton towel", product=products[3])
    assert stat.clicks == pytest.approx(3)  # four sessions, the top one left out
    assert stat.expected == pytest.approx(4 / 4) and stat.sessions == pytest.approx(4)
    assert stat.prior > 0.6
    assert ClickStat.objects.get(query="cotton towel", product=products[0]).prior < 0.5  # shown first 4 times, never clicked
    assert not ClickStat.objects.filter(query="rare words").exists()  # one session: popularity only
    priors = click_priors(text="Cotton Towel", product_ids=[p.pk for p in products])
    assert priors[products[3].pk] == pytest.approx(stat.prior)
    tail = click_priors(text="rare words", product_ids=[products[3].pk])
    assert tail[products[3].pk] == ClickStat.objects.get(query="", product=products[3]).prior


def test_purge_events_deletes_what_is_older_than_the_retention(products, settings):
    settings.CLICK_RETENTION_DAYS = 30
    _, key = shopper()
    old = timezone.now() - timedelta(days=31)
    token = show(key, products, now=old).token
    services.click_record(token=token, product_id=products[0].pk, position=1, session_key=key, user_agent=BROWSER, now=old)
    show(key, products)
    out = io.StringIO()
    call_command("purge_events", stdout=out)
    assert "1 impressions" in out.getvalue() and "1 clicks" in out.getvalue()
    assert SearchImpression.objects.count() == 1 and not SearchClick.objects.exists()


def test_search_status_shows_discards_per_reason(products):
    client, key = shopper()
    token = show(key, products).token
    beacon(client, {"impression_id": token, "product_id": products[0].pk, "position": 1})
    beacon(client, {"impression_id": token, "product_id": products[0].pk, "position": 1})
    beacon(client, "{bad")
    out = io.StringIO()
    call_command("search_status", stdout=out)
    text = out.getvalue()
    assert "Discarded events" in text
    assert "duplicate" in text and "malformed" in text
    assert "clicks counted" in text


def test_the_analytics_page_is_for_staff_only(products, admin_client):
    for i in range(3):
        _, key = shopper(ip=f"192.0.2.{i}")
        token = show(key, products).token
        services.click_record(token=token, product_id=products[1].pk, position=2, session_key=key, user_agent=BROWSER)
    show(key, [], query="unobtainium")
    aggregates.click_aggregates_refresh()
    assert Client().get("/staff/analytics/").status_code == 302  # to the admin login
    page = admin_client.get("/staff/analytics/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and "CTR by position" in html
    assert "unobtainium" in html  # zero-result query
    assert "cotton towel" in html
    gaining = html.split("Gaining from clicks")[1].split("Losing from clicks")[0]
    assert "Cotton towel 1" in gaining and "Cotton towel 0" not in gaining


# -- end to end on the real engine ------------------------------------------------------------------------
@pytest.mark.slow
def test_clicks_reorder_two_products_and_an_attack_does_not(indexed_catalog, settings):
    """Shoppers prefer the second result: after a refresh it is first. Then one session forges
    1,000 clicks on a lower result: it moves at most one rank."""
    from search.selectors import product_search

    settings.CLICK_QUERY_MIN_SESSIONS = 3
    # the whole tail of weak matches (no match cut-off, the earlier kNN floors), so that the
    # sample's towels query has a 13th result for the attack below
    settings.SEARCH_MATCH_MIN_COVERAGE = 0.0
    settings.SEARCH_EXACT_MATCH_BOOST, settings.SEARCH_EXACT_ENOUGH, settings.SEARCH_KNN_ONLY_MIN_COSINE = 0.0, 0, {}  # read coverage too
    settings.SEARCH_KNN_MIN_RATIO = {**settings.SEARCH_KNN_MIN_RATIO, "text": 0.5, "fused": 0.5}
    t0 = timezone.now() - timedelta(days=1)

    def ranked(query: str) -> list[int]:
        return [p.pk for p in product_search(text=query, per_page=24).products]

    query = "cotton bath towel"
    before = ranked(query)
    first, second = before[0], before[1]
    for s in range(8):
        now = t0 + timedelta(minutes=10 * s)
        key = f"e2e-shopper-{s}"
        token = services.impression_record(query=query, product_ids=before, session_key=key, user_agent=BROWSER, now=now).token
        assert services.click_record(token=token, product_id=second, position=2, session_key=key, user_agent=BROWSER, ip=f"192.0.{10 + s}.2", now=now).counted
    aggregates.click_aggregates_refresh(now=t0 + timedelta(hours=2))
    after = ranked(query)
    assert after.index(second) < after.index(first)
    explained = product_search(text=query, per_page=2).products[0].search_explain
    assert explained["clicks"]["raw"] > 0.5 and explained["clicks"]["contribution"] > 0

    target = after[12]
    now = t0 + timedelta(hours=3)
    token = services.impression_record(query=query, product_ids=after, session_key="attacker", user_agent=BROWSER, now=now).token
    outcomes = [
        services.click_record(token=token, product_id=target, position=13, session_key="attacker", user_agent=BROWSER, ip="192.0.2.250",
                            now=now + timedelta(seconds=i))
        for i in range(1000)
    ]
    assert sum(o.counted for o in outcomes) == 1
    assert {o.reason for o in outcomes} == {"", "duplicate", "rate_session"}
    aggregates.click_aggregates_refresh(now=now + timedelta(hours=1))
    attacked = ranked(query)
    assert attacked.index(target) >= 12 - 1
    assert attacked.index(second) < attacked.index(first)


def test_the_storefront_records_an_impression_and_gives_the_page_its_token(indexed_catalog, client):
    client.defaults["HTTP_USER_AGENT"] = BROWSER
    client.get("/search/?q=bath")  # a returning shopper: the first page set the visitor cookie (test_impressions_anonymous.py)
    response = client.get("/search/?q=towel")
    assert response.status_code == 200
    imp = SearchImpression.objects.get()
    assert imp.query == "towel" and imp.product_ids
    html = response.content.decode()
    assert f'data-impression="{services.impression_token(imp.pk)}"' in html and "search/clicks.js" in html
    pid = imp.product_ids[0]
    assert beacon(client, {"impression_id": services.impression_token(imp.pk), "product_id": pid, "position": 1}).status_code == 204
