"""A flood of cookie-less page views against a real gunicorn must not switch protections off.

The attack (issue 11): ~400 cookie-less results pages in ~45 s filled Django's file cache past its
300 entries; its cull deleted live photo-search rate-limit counters (the 13th photo search in a
minute answered 200, not 429) and live photo tokens (410 well within their hour). Each of those
pages also stored a session and an impression row.

Here: gunicorn with production settings and no Redis (so the ``state`` cache is the database,
the default), a few real Flipkart towels indexed through the API, a photo-search limit of 12
an hour (an hour, so a slow machine cannot let counts fall out of the window), then 400
cookie-less results pages from a desktop browser's user agent (bots are never recorded anyway).
"""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from rest_framework.authtoken.models import Token

from search.clicks.models import SearchClick, SearchImpression
from search.clicks.visitors import VISITOR_COOKIE
from shop.merchant_services import merchant_staff_add
from shop.models import Merchant, StateEntry
from tests.attacks.servers import Server
from tests.attacks.stack import Api, manage
from tests.conftest import flipkart_dir

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
FLOOD = 400
PHOTO_LIMIT = 12
TOWELS = 3


def towels(n: int = TOWELS) -> list[tuple[str, Path]]:
    """(title, photo) of the first ``n`` Flipkart towels that have a photo (read from CATALOG_DIR)."""
    found = []
    with (flipkart_dir() / "products.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            photo = flipkart_dir() / "images" / row["image"]
            if "towel" in row["product_name"].lower() and row["discounted_price"] and photo.is_file():
                found.append((row["product_name"], photo))
            if len(found) == n:
                return found
    pytest.skip(f"Fewer than {n} Flipkart towels with photos in {flipkart_dir()}")


@pytest.fixture(scope="module")
def site(server_factory) -> Server:
    server = server_factory(kind="gunicorn", env={"API_THROTTLE_PHOTO_ANON": f"{PHOTO_LIMIT}/hour"}, args=("--threads", "2"))
    manage(server.env, "collectstatic", "--noinput")  # the storefront's pages name hashed static files (production settings)
    return server


@pytest.fixture
def shop(site, django_user_model) -> Iterator[list[int]]:
    """The towels, added through the API by a merchant and indexed by the server (no broker: at commit)."""
    user = django_user_model.objects.create_user("towels")
    merchant_staff_add(merchant=Merchant.objects.create(name="Towel House"), user=user)
    api = Api(site.url, Token.objects.create(user=user).key)
    ids = []
    for title, photo in towels():
        pk = api.call("POST", "/api/products/", json={"title": title, "price": "499"}).json()["id"]
        with photo.open("rb") as fh:
            assert api.call("POST", f"/api/products/{pk}/images/", files={"image": ("towel.jpg", fh, "image/jpeg")}).status_code == 201
        ids.append(pk)
    states = {pk: api.call("GET", f"/api/products/{pk}/index-state/").json()["index_state"] for pk in ids}
    assert set(states.values()) == {"indexed"}, states
    yield ids


def photo_search(site: Server, photo: Path) -> requests.Response:
    with photo.open("rb") as fh:
        return site.post("/api/search/image", files={"image": ("q.jpg", fh, "image/jpeg")}, headers={"User-Agent": BROWSER})


def flood(site: Server, pages: int, clients: int = 2) -> list[int]:
    """``pages`` cookie-less results pages (a fresh connection and no cookie each); returns the statuses seen."""
    statuses: list[int] = []

    def run(share: int) -> None:
        for _ in range(share):
            response = requests.get(site.url + "/search/", params={"q": "cotton bath towel"}, headers={"User-Agent": BROWSER}, timeout=120)
            statuses.append(response.status_code)

    threads = [threading.Thread(target=run, args=(pages // clients,)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    return statuses


def test_a_cookie_less_flood_neither_evicts_the_photo_limit_and_tokens_nor_stores_sessions_and_impressions(site, shop):
    from django.contrib.sessions.models import Session

    photo = towels()[0][1]
    # given: half the photo-search budget spent, and a photo token issued
    first = photo_search(site, photo)
    assert first.status_code == 200, first.text
    token = first.json()["photo"]
    for _ in range(PHOTO_LIMIT // 2 - 1):
        assert photo_search(site, photo).status_code == 200
    sessions, impressions, state_rows = Session.objects.count(), SearchImpression.objects.count(), StateEntry.objects.count()

    # when: 400 cookie-less results pages
    statuses = flood(site, FLOOD)

    # then: every page was served, and none stored a session or an impression (nor a state entry)
    assert statuses.count(200) == FLOOD
    assert Session.objects.count() - sessions == 0
    assert SearchImpression.objects.count() - impressions == 0
    assert StateEntry.objects.count() - state_rows < 10
    # the photo limit still counts: the rest of the budget, then 429 for the 13th in the hour
    for n in range(PHOTO_LIMIT // 2 + 1, PHOTO_LIMIT + 1):
        assert photo_search(site, photo).status_code == 200, f"photo search {n} of {PHOTO_LIMIT}"
    refused = photo_search(site, photo)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled" and int(refused.headers["Retry-After"]) > 0
    # and the token issued before the flood still reads back its photo's results
    again = site.get("/api/search/image", params={"photo": token})
    assert again.status_code == 200, again.text
    assert again.json()["results"][0]["id"] in shop


def test_a_first_time_shoppers_click_counts_and_stores_one_impression(site, shop):
    # given: a browser's first results page (no cookie yet): no impression stored, and the visitor
    # cookie (Secure under the production settings: the test's browser stands behind a TLS proxy,
    # so it sends the cookie back itself over the loopback's plain HTTP)
    headers = {"User-Agent": BROWSER, "X-Forwarded-Proto": "https"}
    page = requests.get(site.url + "/search/", params={"q": "cotton bath towel"}, headers=headers, timeout=120)
    assert page.status_code == 200 and SearchImpression.objects.count() == 0
    set_cookie = page.headers["Set-Cookie"]
    assert set_cookie.startswith(f"{VISITOR_COOKIE}=") and "HttpOnly" in set_cookie and "Secure" in set_cookie and "sessionid" not in set_cookie
    cookies = {VISITOR_COOKIE: page.cookies[VISITOR_COOKIE]}
    token = page.text.split('data-impression="', 1)[1].split('"', 1)[0]
    first_id = int(page.text.split('href="/p/', 1)[1].split("/", 1)[0])
    click = json.dumps({"impression_id": token, "product_id": first_id, "position": 1})

    # when: the shopper clicks the first result (the beacon clicks.js sends, with the page's cookie)
    response = requests.post(site.url + "/events/click", data=click, cookies=cookies, headers={**headers, "Content-Type": "text/plain"}, timeout=120)

    # then: the click counts, and the page it was on is stored now
    assert response.status_code == 204, response.text
    stored = SearchClick.objects.get()
    assert stored.counted and stored.product_id == first_id and stored.position == 1
    assert SearchImpression.objects.get().query == "cotton bath towel"
    # the same page's token from a browser without that cookie counts nothing and stores nothing
    stranger = requests.post(site.url + "/events/click", data=click, headers={**headers, "Content-Type": "text/plain"}, timeout=120)
    assert stranger.status_code == 403 and stranger.json()["reason"] == "session_mismatch"
    assert SearchImpression.objects.count() == 1 and SearchClick.objects.count() == 1
    # the shopper's next page is stored at once (the visitor cookie names them)
    assert requests.get(site.url + "/search/", params={"q": "towel"}, cookies=cookies, headers=headers, timeout=120).status_code == 200
    assert SearchImpression.objects.count() == 2
