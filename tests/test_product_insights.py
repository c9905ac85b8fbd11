"""A product's admin page, "How shoppers find this product", over HTTP with real users.

Real parts: the indexed Flipkart sample (``indexed_catalog``: real rows, real encoders, the
embedded engine), SQLite, users who sign in with their passwords, and search events recorded
through the click services (:func:`impression_record`, :func:`click_record`) with their guards.
The rank box runs the storefront's search; its answer is checked against ``GET /api/search``
with ``explain=true``. The photo/text consistency score does not exist yet (the multimodal
check adds it): its slot is tested by giving ``Product`` the optional attribute for one test.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from search.clicks import services
from search.clicks.analytics import product_queries
from search.clicks.models import SearchClick, SearchImpression
from search.embedding.encoders import image_dim
from shop import insights_admin
from shop.merchant_services import merchant_staff_add
from shop.models import Merchant, Product

pytestmark = [pytest.mark.django_db]

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
PASSWORDS = {"towelco": "pw-towels-1", "watchco": "pw-watches-1", "root": "pw-root-1", "shopper": "pw-shopper-1"}
QUERY = "cotton bath towel"


class Tables(HTMLParser):
    """Rows of every ``<table>`` in a page, by the table's classes: ``{"queries-shown": [[cell, ...], ...]}``."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._section = ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = []
            for cls in (dict(attrs).get("class") or "").split():
                self.tables[cls] = self._table
        elif tag in ("thead", "tbody", "tfoot"):
            self._section = tag
        elif tag == "tr" and self._table is not None and self._section != "thead":
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None and self._section != "thead":
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def shop(indexed_catalog):
    """Two merchants with staff, a superuser and a shopper (all signing in with passwords); merchant A
    owns a real towel, merchant B a real product of another category; the click log starts empty."""
    cache.clear()  # the click guards' rate limits live in the cache
    SearchClick.objects.all().delete()
    SearchImpression.objects.all().delete()
    User = get_user_model()
    users = {
        "towelco": User.objects.create_user("towelco", password=PASSWORDS["towelco"]),
        "watchco": User.objects.create_user("watchco", password=PASSWORDS["watchco"]),
        "root": User.objects.create_superuser("root", password=PASSWORDS["root"]),
        "shopper": User.objects.create_user("shopper", password=PASSWORDS["shopper"]),
    }
    towels, watches = Merchant.objects.create(name="Towel Co"), Merchant.objects.create(name="Watch Co")
    merchant_staff_add(merchant=towels, user=users["towelco"])
    merchant_staff_add(merchant=watches, user=users["watchco"])
    sample = Product.objects.filter(pk__in=indexed_catalog.product_ids).order_by("pk")
    towel = sample.filter(title__icontains="towel").first()
    other = sample.exclude(title__icontains="towel").exclude(category__path=towel.category.path).first()
    Product.objects.filter(pk=towel.pk).update(merchant=towels)  # the search document does not hold the merchant
    Product.objects.filter(pk=other.pk).update(merchant=watches)
    towel.refresh_from_db()
    others = list(sample.exclude(pk__in=[towel.pk, other.pk]).values_list("pk", flat=True)[:30])
    return {"users": users, "towel": towel, "other": Product.objects.get(pk=other.pk), "others": others}


def text_of(html: str) -> str:
    """The page's text without tags, spaces collapsed (entities left as they are)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" .", ".")


def signed_in(role: str) -> Client:
    client = Client()
    if role != "anonymous":
        assert client.login(username=role, password=PASSWORDS[role])
    return client


def page_of(product: Product) -> str:
    return f"/admin/shop/product/{product.pk}/change/"


def search_shown(query: str, ids: list[int], *, session: str, page: int = 1, photo: bool = False, when=None, ip: str = "192.0.2.10"):
    """A results page a shopper saw, recorded as the storefront records it."""
    vector = np.ones(image_dim(), dtype=np.float32) if photo else None
    recorded = services.impression_record(query=query, product_ids=ids, session_key=session, page=page, per_page=24,
                                          image_vector=vector, user_agent=BROWSER, ip=ip, now=when)
    assert recorded.impression is not None, recorded.reason
    return recorded


def clicked(recorded, product_id: int, position: int, *, session: str, user_agent: str = BROWSER, when=None, ip: str = "192.0.2.10"):
    return services.click_record(token=recorded.token, product_id=product_id, position=position, session_key=session,
                                 user_agent=user_agent, ip=ip, now=when)


@pytest.fixture
def clicks(shop):
    """Real events for the towel over the last 40 days, recorded through the click services."""
    towel, others = shop["towel"], shop["others"]
    now = timezone.now()
    # three shoppers on three networks saw it second for "cotton bath towel"; two clicked it (so the
    # click prior counts them: two networks share the click); a bot's click is refused
    for s in range(3):
        ip = f"198.51.{100 + s}.10"
        rec = search_shown(QUERY, [others[0], towel.pk, *others[1:5]], session=f"bath-{s}", ip=ip)
        if s < 2:
            assert clicked(rec, towel.pk, 2, session=f"bath-{s}", ip=ip).counted
        else:
            assert not clicked(rec, towel.pk, 2, session=f"bath-{s}", user_agent="Googlebot/2.1").counted
    # one saw it third on page 2 of "Bath Towel" (absolute position 27), no click
    search_shown("Bath Towel", [others[5], others[6], towel.pk], session="page-2", page=2)
    # one searched by a photo alone and clicked it first
    rec = search_shown("", [towel.pk, *others[:3]], session="photo", photo=True)
    assert clicked(rec, towel.pk, 1, session="photo").counted
    # 40 days ago: seen for "old towel" (outside 30 days, inside 90)
    search_shown("old towel", [towel.pk], session="old", when=now - timedelta(days=40))
    # a page holding an id whose digits contain the towel's id, but not the towel
    search_shown("decoy", [int(f"{towel.pk}7"), int(f"9{towel.pk}")], session="decoy")
    return shop


def test_merchant_sees_the_queries_that_showed_and_clicked_the_product(clicks):
    # when: the towel's merchant opens its page
    response = signed_in("towelco").get(page_of(clicks["towel"]))

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "How shoppers find this product" in html
    tables = Tables(html).tables
    assert tables["queries-shown"] == [  # most impressions first, then most clicks
        [QUERY, "3", "2", "66.7 %", "2.0"],
        ["A photo, no words", "1", "1", "100.0 %", "1.0"],
        ["bath towel", "1", "0", "0.0 %", "27.0"],
    ]
    assert tables["queries-clicked"] == [
        [QUERY, "2", "3", "66.7 %", "2.0"],
        ["A photo, no words", "1", "1", "100.0 %", "1.0"],
    ]
    assert "In the last 30 days: shown 5 times in search results, clicked 3 times." in html


def test_the_period_is_chosen_and_a_bad_one_is_said_in_plain_words(clicks):
    client = signed_in("towelco")

    wide = Tables(client.get(page_of(clicks["towel"]), {"days": "90"}).content.decode()).tables["queries-shown"]
    narrow = client.get(page_of(clicks["towel"]), {"days": "7"})
    bad = client.get(page_of(clicks["towel"]), {"days": "365"})

    assert ["old towel", "1", "0", "0.0 %", "1.0"] in wide and len(wide) == 4
    assert [row[0] for row in Tables(narrow.content.decode()).tables["queries-shown"]] == [QUERY, "A photo, no words", "bath towel"]
    assert bad.status_code == 200
    assert "Choose a period of 7, 30 or 90 days; showing the last 30 days." in bad.content.decode()
    assert len(Tables(bad.content.decode()).tables["queries-shown"]) == 3


def test_a_product_nobody_searched_for_says_so_in_plain_words(shop):
    response = signed_in("towelco").get(page_of(shop["towel"]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "No shopper has seen this product in search results in the last 30 days." in html
    assert "No shopper has clicked this product from search results in the last 30 days." in html
    assert "queries-shown" not in html


def test_the_rank_box_gives_the_rank_and_the_score_parts_the_search_api_explains(clicks):
    from django.template.defaultfilters import floatformat

    from search.clicks.aggregates import click_aggregates_refresh

    click_aggregates_refresh()  # the recorded clicks become the click prior searches use
    towel = clicks["towel"]
    api = Client().get("/api/search", {"q": QUERY, "page_size": 100, "explain": "true"}).json()
    expected_rank = [hit["id"] for hit in api["results"]].index(towel.pk) + 1
    explain = next(hit["explain"] for hit in api["results"] if hit["id"] == towel.pk)
    impressions_before = SearchImpression.objects.count()

    # when
    response = signed_in("towelco").get(page_of(towel), {"rank_q": QUERY})

    # then: the rank, and each part as the API's explain gives it, in plain labels
    html = response.content.decode()
    assert f"For “{QUERY}” this product ranks #{expected_rank} of {api['count']} results." in text_of(html)
    parts = Tables(html).tables["score-parts"]
    labels = {"bm25": "BM25", "text_knn": "Text kNN", "fused_knn": "Fused kNN", "image_knn": "Image kNN", "clicks": "Click prior",
              "exact": "Exact match"}
    shown = {row[0]: row for row in parts[:-1]}
    expected = {labels[name]: part for name, part in explain.items() if isinstance(part, dict)}
    assert set(shown) == set(expected) and "Click prior" in shown
    for label, part in expected.items():  # rounded as the page rounds (Django's floatformat: half up on the decimal)
        assert shown[label][2:] == [f"#{part['rank']}", floatformat(part["raw"], 3), floatformat(part["contribution"], 4)]
    assert parts[-1] == ["Total score", floatformat(explain["score"], 4)]
    assert "Linear fusion" in html or "Reciprocal Rank Fusion" in html
    # and: checking a rank is not a shopper's search
    assert SearchImpression.objects.count() == impressions_before


def test_the_rank_box_says_when_the_product_is_not_in_the_first_n(shop, monkeypatch):
    # given: the merchant owns the product that ranks second for "towel", and the box looks at the first result only
    monkeypatch.setattr(insights_admin, "RANK_DEPTH", 1)
    api = Client().get("/api/search", {"q": "towel", "page_size": 2}).json()
    first, second = api["results"][0], Product.objects.get(pk=api["results"][1]["id"])
    Product.objects.filter(pk=second.pk).update(merchant=shop["towel"].merchant)

    html = signed_in("towelco").get(page_of(second), {"rank_q": "towel"}).content.decode()

    assert f"For “towel” this product is not in the first 1 of {api['count']} results." in text_of(html)
    assert f"<li>{escape(first['title'])}</li>" in html  # what ranks first instead


def test_the_rank_box_says_when_the_words_do_not_find_the_product(shop):
    html = signed_in("towelco").get(page_of(shop["towel"]), {"rank_q": "qzxv"}).content.decode()

    assert "For “qzxv” this product is not among the results" in text_of(html)


def test_the_rank_box_says_when_the_index_may_not_have_the_latest_changes(shop):
    Product.objects.filter(pk=shop["towel"].pk).update(index_state="pending")

    html = signed_in("towelco").get(page_of(shop["towel"]), {"rank_q": QUERY}).content.decode()

    assert "This product is pending in the search index, so search may not show its latest changes yet." in html


def test_the_rank_box_explains_bad_words(shop):
    client = signed_in("towelco")

    empty = client.get(page_of(shop["towel"]), {"rank_q": "  "}).content.decode()
    symbols = client.get(page_of(shop["towel"]), {"rank_q": "!!!"}).content.decode()

    assert "Type the words a shopper might search for" in empty
    assert "The search has no letters or digits. Try words such as &#x27;cotton towel&#x27;." in symbols


# page -> what each user gets: 200 with the panel, "index" the admin's "doesn't exist" redirect, "login".
ACCESS = {"towelco": 200, "watchco": "index", "root": 200, "shopper": "login", "anonymous": "login"}


@pytest.mark.parametrize("role", list(ACCESS))
def test_only_the_products_merchant_and_superusers_see_how_it_is_found(clicks, role):
    response = signed_in(role).get(page_of(clicks["towel"]), {"rank_q": QUERY, "days": "30"})

    expected = ACCESS[role]
    if expected == 200:
        assert response.status_code == 200
        assert Tables(response.content.decode()).tables["queries-shown"][0][0] == QUERY
    elif expected == "index":
        assert response.status_code == 302 and response["Location"] == "/admin/"
    else:
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    if expected != 200:
        assert QUERY not in response.content.decode()


def test_merchants_see_it_on_their_own_products_only(shop):
    # merchant B on its own product: the panel; merchant A on an imported catalog product: the redirect
    own = signed_in("watchco").get(page_of(shop["other"]))
    catalog = Product.objects.filter(merchant__isnull=True).first()
    foreign = signed_in("towelco").get(page_of(catalog), {"rank_q": QUERY})
    superuser = signed_in("root").get(page_of(catalog))

    assert own.status_code == 200 and "How shoppers find this product" in own.content.decode()
    assert foreign.status_code == 302 and foreign["Location"] == "/admin/"
    assert superuser.status_code == 200 and "How shoppers find this product" in superuser.content.decode()


def test_the_add_page_has_no_panel(shop):
    response = signed_in("towelco").get("/admin/shop/product/add/")

    assert response.status_code == 200 and "How shoppers find this product" not in response.content.decode()


def test_the_consistency_slot_shows_nothing_until_a_product_has_a_score(shop, monkeypatch):
    from search.models import ProductEmbedding

    client = signed_in("towelco")
    stored = ProductEmbedding.objects.get(product=shop["towel"]).consistency
    assert stored is not None  # indexing scored the photo against the words
    ProductEmbedding.objects.filter(product=shop["towel"]).update(consistency=None)
    assert "Photo and words" not in client.get(page_of(shop["towel"])).content.decode()

    # the stored score shows (the photo/text check of search.consistency)
    ProductEmbedding.objects.filter(product=shop["towel"]).update(consistency=stored)
    assert f'class="consistency-score">{stored:.2f}<' in client.get(page_of(shop["towel"])).content.decode()

    # an attribute of that name wins: a plain number, then an object with a flag
    monkeypatch.setattr(Product, "photo_text_consistency", 0.8123, raising=False)
    plain = client.get(page_of(shop["towel"])).content.decode()

    class Score:
        score, flagged = 0.1234, True

    monkeypatch.setattr(Product, "photo_text_consistency", Score(), raising=False)
    flagged = client.get(page_of(shop["towel"])).content.decode()

    assert "Photo and words" in plain and 'class="consistency-score">0.81<' in plain and "may not show" not in plain
    assert 'class="consistency-score">0.12<' in flagged
    assert "The photo may not show what the title and description say." in flagged


def test_product_queries_counts_only_the_products_own_pages(clicks):
    found = product_queries(clicks["towel"].pk, days=30)

    assert "decoy" not in {row.query for row in found.shown}
    assert (found.impressions, found.clicks, found.capped) == (5, 3, False)
    with pytest.raises(ValueError, match="at least 1"):
        product_queries(clicks["towel"].pk, days=0)


def test_a_product_on_more_pages_than_are_read_says_only_the_newest_were_counted(clicks, monkeypatch):
    from search.clicks import analytics

    # the newest four pages holding the id's digits: the decoy, "old towel" (40 days ago), the photo search, "bath towel"
    monkeypatch.setattr(analytics, "MAX_PRODUCT_IMPRESSIONS_SCANNED", 4)

    found = product_queries(clicks["towel"].pk, days=30)
    html = signed_in("towelco").get(page_of(clicks["towel"])).content.decode()

    assert found.capped and found.impressions == 2
    assert {row.label for row in insights_admin.query_lines(found.shown)} == {"A photo, no words", "bath towel"}
    assert "Only the newest searches were read for this period." in html
    # clicks are all counted; a query none of whose pages were read has no CTR to give
    assert [QUERY, "2", "0", "–", "–"] in Tables(html).tables["queries-clicked"]
