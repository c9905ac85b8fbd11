"""A first-time visitor's results page costs no session and no row until it is clicked (search.clicks.visitors).

Real storefront pages through Django's test client on the Flipkart sample (``indexed_catalog``),
real encoders, SQLite. The same attack on a real gunicorn (400 cookie-less pages) is
tests/attacks/test_cache_flood.py.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from search.clicks import services
from search.clicks.models import EventDiscard, PhotoReference, SearchClick, SearchImpression
from search.clicks.selectors import photo_refs_reset
from search.clicks.visitors import VISITOR_COOKIE
from shop.models import Product
from shop.state import state_cache
from tests.conftest import flipkart_dir

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(autouse=True)
def _fresh_state():
    state_cache().clear()
    photo_refs_reset()
    yield
    photo_refs_reset()


def browser() -> Client:
    return Client(HTTP_USER_AGENT=BROWSER)


def token_of(response) -> str:
    found = re.search(r'data-impression="([^"]+)"', response.content.decode())
    return found.group(1) if found else ""


def beacon(client: Client, token: str, product_id: int, position: int):
    body = json.dumps({"impression_id": token, "product_id": product_id, "position": position})
    return client.post("/events/click", data=body, content_type="text/plain")


def test_a_first_time_visitors_results_page_stores_no_session_and_no_impression(indexed_catalog):
    # when
    response = browser().get("/search/", {"q": "cotton bath towel"})
    # then: results, with a click token that names no row, and the visitor cookie instead of a session
    assert response.status_code == 200 and response.context["page"].products
    token = token_of(response)
    assert token and services.impression_id_from_token(token) is None
    assert VISITOR_COOKIE in response.cookies and "sessionid" not in response.cookies
    assert response.cookies[VISITOR_COOKIE]["httponly"] and response.cookies[VISITOR_COOKIE]["samesite"] == "Lax"
    assert Session.objects.count() == 0 and SearchImpression.objects.count() == 0


def test_fifty_cookie_less_pages_store_nothing(indexed_catalog):
    for _ in range(50):
        assert browser().get("/search/", {"q": "towel"}).status_code == 200
    assert Session.objects.count() == 0 and SearchImpression.objects.count() == 0


def test_clicks_on_a_first_time_visitors_page_store_that_page_once_and_count(indexed_catalog):
    # given
    client = browser()
    response = client.get("/search/", {"q": "cotton bath towel"})
    shown = [p.pk for p in response.context["page"].products]
    token = token_of(response)
    # when: two results of the page are clicked
    first, second = beacon(client, token, shown[0], 1), beacon(client, token, shown[1], 2)
    # then: both count, against one stored impression of that page
    assert (first.status_code, second.status_code) == (204, 204)
    imp = SearchImpression.objects.get()
    assert (imp.query, imp.product_ids[: len(shown)], imp.page, imp.offset) == ("cotton bath towel", shown, 1, 0)
    assert [(c.product_id, c.position, c.counted) for c in SearchClick.objects.order_by("pk")] == [(shown[0], 1, True), (shown[1], 2, True)]
    assert Session.objects.count() == 0
    # and the visitor's next page is stored when it is shown
    client.get("/search/", {"q": "towel"})
    assert SearchImpression.objects.count() == 2
    assert SearchImpression.objects.order_by("pk").last().session_hash == imp.session_hash


def test_a_first_time_visitors_page_token_counts_nothing_from_another_browser_or_altered(indexed_catalog):
    # given
    response = browser().get("/search/", {"q": "cotton bath towel"})
    token, pid = token_of(response), response.context["page"].products[0].pk
    # when
    stranger = beacon(browser(), token, pid, 1)
    altered = beacon(browser(), token[:-3] + ("xyz" if not token.endswith("xyz") else "abc"), pid, 1)
    # then
    assert (stranger.status_code, stranger.json()["reason"]) == (403, "session_mismatch")
    assert (altered.status_code, altered.json()["reason"]) == (400, "bad_token")
    assert SearchImpression.objects.count() == 0 and SearchClick.objects.count() == 0


def test_a_bot_gets_no_click_token_and_is_counted_as_a_discarded_impression(indexed_catalog):
    response = Client(HTTP_USER_AGENT=GOOGLEBOT).get("/search/", {"q": "towel"})
    assert response.status_code == 200 and token_of(response) == ""
    assert EventDiscard.objects.get(kind="impression", reason="bot").count == 1
    assert SearchImpression.objects.count() == 0


def test_a_click_after_a_first_time_visitors_photo_search_keeps_the_photo_as_a_reference(indexed_catalog):
    # given: a photo search by a first-time visitor (its results page carries the photo token)
    product = Product.objects.filter(pk__in=indexed_catalog.product_ids, title__icontains="towel", images__isnull=False).first()
    photo = (flipkart_dir() / "images" / product.images.get(is_primary=True).source_name).read_bytes()
    client = browser()
    results = client.get(client.post("/search/photo/", {"image": SimpleUploadedFile("q.jpg", photo, content_type="image/jpeg")})["Location"])
    shown = [p.pk for p in results.context["page"].products]
    assert SearchImpression.objects.count() == 0
    # when
    assert beacon(client, token_of(results), shown[0], 1).status_code == 204
    # then: the stored impression is a photo query with the photo's vector, now a reference of the product
    imp = SearchImpression.objects.get()
    assert imp.is_image_query and imp.query_image_vector() is not None
    assert PhotoReference.objects.filter(product_id=shown[0]).count() == 1
