"""The storefront as a shopper sees it: home, search by words and by photo, filters, the product page,
and a clear reason (never a 500) for every bad input.

Real parts throughout: the Flipkart sample from ``CATALOG_DIR`` imported and indexed once per
session (``indexed_catalog``), the real encoders, the embedded engine, SQLite.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from html import unescape
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from search.backends import load_backend
from shop.models import Product
from shop.query_photos import query_photo_load
from shop.state import state_cache
from shop.templatetags.shop_tags import inr
from tests.conftest import flipkart_dir
from tests.photos import HEADER_CUT_JPEG, NOT_AN_IMAGE, OVERSIZED_JPEG, jpeg_bytes, png_bytes, png_with_declared_size

pytestmark = [pytest.mark.django_db]


# --- helpers ------------------------------------------------------------------------------------
def catalog_photo(product: Product) -> bytes:
    """The product's original photo, read from the catalog folder (not from media storage)."""
    return (flipkart_dir() / "images" / product.images.get(is_primary=True).source_name).read_bytes()


def upload(client, data: bytes, name: str = "photo.jpg", q: str = ""):
    return client.post("/search/photo/", {"image": SimpleUploadedFile(name, data, content_type="image/jpeg"), "q": q})


def page_text(response) -> str:
    """The page's HTML with entities decoded (``&amp;`` -> ``&``), as a shopper reads it."""
    return unescape(response.content.decode())


def result_ids(response) -> list[int]:
    return [p.pk for p in response.context["page"].products]


def reason_in(response, text: str) -> bool:
    """The reason appears in the page's alert box (HTML-escaped like the template does it)."""
    alert = re.search(r'<div class="alert[^"]*" role="alert">(.*?)</div>', response.content.decode(), re.S)
    return alert is not None and text in unescape(alert.group(1))


# --- home ---------------------------------------------------------------------------------------
def test_home_shows_category_tiles_and_top_rated_products(client, indexed_catalog):
    # when
    response = client.get("/")

    # then
    assert response.status_code == 200
    html = page_text(response)
    tiles = response.context["tiles"]
    assert len(tiles) == 7  # the sample spans the seven top-level Flipkart categories
    for tile in tiles:
        assert tile.category.name in html
        assert tile.image is not None
    top = response.context["top_rated"]
    ratings = [p.rating for p in top]
    assert ratings == sorted(ratings, reverse=True) and ratings
    assert top[0].title[:40] in html
    assert inr(top[0].price) in html
    assert 'enctype="multipart/form-data"' in html and 'name="image"' in html


# --- text search ----------------------------------------------------------------------------------
def test_cotton_bath_towel_shows_a_towel_near_the_top_with_its_price(client, indexed_catalog):
    response = client.get("/search/", {"q": "cotton bath towel"})

    assert response.status_code == 200
    top = response.context["page"].products[:5]
    towels = [p for p in top if "towel" in p.title.lower()]
    assert towels, [p.title for p in top]
    html = page_text(response)
    assert towels[0].title[:40] in html
    assert inr(towels[0].price) in html
    assert "Results for “cotton bath towel”" in html


def test_prices_use_rupee_sign_and_indian_digit_grouping():
    assert inr(Decimal("1299")) == "₹1,299"
    assert inr(Decimal("124999.00")) == "₹1,24,999"
    assert inr(Decimal("49.5")) == "₹49.50"
    assert inr(None) == ""


def test_discounted_product_shows_list_price_struck_through(client, indexed_catalog):
    product = next(p for p in Product.objects.order_by("pk") if p.discount_percent)

    response = client.get(f"/p/{product.pk}/")

    html = page_text(response)
    assert f'<s class="list-price">{inr(product.list_price)}</s>' in html
    assert f"{product.discount_percent}% off" in html


def test_category_filter_narrows_results_and_facet_counts_add_up(client, indexed_catalog):
    # given: the products an unfiltered text query matches, counted by category
    everything = client.get("/search/", {"q": "cotton"})
    facets = everything.context["page"].facets["category"]
    total = everything.context["page"].total
    assert sum(f.count for f in facets) == total

    # when: the shopper clicks the largest category
    biggest = max(facets, key=lambda f: f.count)
    narrowed = client.get("/search/", {"q": "cotton", "category": biggest.value})

    # then
    page = narrowed.context["page"]
    assert narrowed.status_code == 200
    assert page.total == biggest.count < total
    assert all(p.category.path == biggest.value or p.category.path.startswith(biggest.value + " > ") for p in page.products)
    html = page_text(narrowed)
    assert f"Category: {biggest.label}" in html  # the removable filter chip
    assert sum(f.count for f in page.facets["price"]) == page.total


def test_brand_and_price_band_links_filter_the_results(client, indexed_catalog):
    response = client.get("/search/", {"q": "cotton"})
    band = max(response.context["price_links"], key=lambda link: link.count)

    by_price = client.get(band.url)

    assert by_price.status_code == 200
    assert by_price.context["page"].total == band.count
    assert [link for link in by_price.context["price_links"] if link.active]
    brand = response.context["brand_links"][0]
    by_brand = client.get(brand.url)
    assert by_brand.context["page"].total == brand.count
    assert {p.brand.name for p in by_brand.context["page"].products} == {brand.label}


def test_a_second_brand_can_be_added_to_the_first_with_counts_that_hold(client, indexed_catalog):
    # given a search narrowed to one brand
    first, second = client.get("/search/", {"q": "cotton"}).context["brand_links"][:2]
    narrowed = client.get(first.url)
    # then the brand list still offers the other brands with their own counts, the chosen one marked
    links = {link.label: link for link in narrowed.context["brand_links"]}
    assert links[first.label].active and links[first.label].count == first.count
    assert not links[second.label].active and links[second.label].count == second.count
    # when the shopper adds the second brand
    both = client.get(links[second.label].url)
    # then the results are the products of either brand
    page = both.context["page"]
    assert page.total == first.count + second.count
    assert {p.brand.name for p in page.products} == {first.label, second.label}
    assert [link.label for link in both.context["brand_links"] if link.active] == [first.label, second.label]


@pytest.mark.parametrize("query", ["shirt", "cotton bath towel", "wrist watch"])
def test_every_facet_count_is_the_number_of_results_its_filter_opens(client, indexed_catalog, query):
    # given a search and its facets
    page = client.get("/search/", {"q": query}).context["page"]
    links = [("category", f.value, f.count) for f in page.facets["category"]] + [("brand", f.value, f.count) for f in page.facets["brand"][:5]]
    # then the unrelated tail of the kNN lists is not listed
    assert 0 < page.total < len(indexed_catalog.product_ids)
    # and each facet opens exactly as many products as it says
    for name, value, count in links:
        narrowed = client.get("/search/", {"q": query, name: value}).context["page"]
        assert narrowed.total == count, (name, value)


def test_clear_all_removes_every_filter_and_keeps_the_words_and_sort(client, indexed_catalog):
    # given a search narrowed by category, brand and price, sorted by price
    first = client.get("/search/", {"q": "cotton"}).context["page"]
    category, brand = first.facets["category"][0].value, first.facets["brand"][0].value
    narrowed = client.get("/search/", {"q": "cotton", "category": category, "brand": brand, "price_min": "1", "sort": "price_asc"})
    html = narrowed.content.decode()
    # when the shopper clicks "Clear all"
    href = re.search(r'<a class="chip chip-clear" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    cleared = client.get(href)
    # then the filters are gone, the words and the sort stay, and the full result count is back
    assert parse_qs(urlparse(href).query) == {"q": ["cotton"], "sort": ["price_asc"]}
    assert cleared.context["page"].total == first.total


def test_page_two_differs_from_page_one(client, settings, indexed_catalog):
    settings.SEARCH_PAGE_SIZE = 6  # the sample's "cotton" products fill a few short pages
    first = client.get("/search/", {"q": "cotton"})
    second = client.get("/search/", {"q": "cotton", "page": "2"})

    assert first.context["page"].num_pages >= 2
    assert second.status_code == 200
    assert result_ids(second) and not set(result_ids(first)) & set(result_ids(second))
    assert 'aria-current="page">2<' in second.content.decode()


def test_sort_by_price_ascending_is_ascending_across_pages(client, settings, indexed_catalog):
    settings.SEARCH_PAGE_SIZE = 6
    pages = [client.get("/search/", {"q": "cotton", "sort": "price_asc", "page": str(n)}) for n in (1, 2)]

    prices = [p.price for r in pages for p in r.context["page"].products if p.price is not None]
    assert len(prices) > 6
    assert prices == sorted(prices)
    assert prices[0] < prices[-1]


def test_why_this_result_shows_score_parts(client, indexed_catalog):
    response = client.get("/search/", {"q": "cotton bath towel", "explain": "1"})

    html = page_text(response)
    assert "Why this result" in html
    assert "<td title=\"Keyword match" in response.content.decode()
    assert ">BM25</td>" in html and ">Text kNN</td>" in html
    first = response.context["page"].products[0]
    # the first towel holds every word of the query: its exact-match lift is one of the parts, named
    assert {row.retriever for row in first.explain_rows} <= {"bm25", "text_knn", "fused_knn", "exact"}
    assert "exact" in {row.retriever for row in first.explain_rows} and ">Exact match</td>" in html


# --- photo search ---------------------------------------------------------------------------------
def test_own_photo_finds_the_product_first_and_keeps_only_vectors(client, indexed_catalog):
    # given
    product = Product.objects.filter(pk__in=indexed_catalog.product_ids, images__isnull=False).order_by("pk")[5]

    # when
    response = upload(client, catalog_photo(product))

    # then: a redirect to a shareable results URL holding only a token
    assert response.status_code == 302
    url = urlparse(response["Location"])
    assert url.path == "/search/"
    token = parse_qs(url.query)["img"][0]
    stored = state_cache().get(f"query-photo:{token}")
    assert set(stored) == {"features", "logits"}
    assert len(stored["features"]) == 1280 and len(stored["logits"]) == 1000
    assert query_photo_load(token) is not None

    results = client.get(response["Location"])
    assert results.status_code == 200
    assert result_ids(results)[0] == product.pk
    assert "Searching by your photo" in results.content.decode()


def test_photo_with_words_keeps_the_words_in_the_results_url(client, indexed_catalog):
    product = Product.objects.filter(pk__in=indexed_catalog.product_ids).order_by("pk")[10]

    response = upload(client, catalog_photo(product), q=product.title.split()[0])

    params = parse_qs(urlparse(response["Location"]).query)
    assert params["q"] == [product.title.split()[0]]
    results = client.get(response["Location"])
    assert results.status_code == 200
    assert product.pk in result_ids(results)[:3]


# --- product page ---------------------------------------------------------------------------------
def test_product_page_shows_details_breadcrumb_and_looks_similar(client, indexed_catalog):
    product = Product.objects.filter(pk__in=indexed_catalog.product_ids).exclude(specifications={}).first()

    response = client.get(f"/p/{product.pk}/")

    assert response.status_code == 200
    html = page_text(response)
    assert product.title in html
    assert inr(product.price) in html
    assert "Looks similar" in html
    similar = response.context["similar"]
    assert similar and product.pk not in [p.pk for p in similar]
    assert "/search/?" + urlencode({"category": product.category.root.path}) in html  # breadcrumb link
    key = next(iter(product.specifications))
    assert key in html


def test_unknown_product_is_404(client, indexed_catalog):
    assert client.get("/p/999999/").status_code == 404
    assert client.get("/p/99999999999999999999999/").status_code == 404


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        ({}, 400, "Type a few words or add a photo"),
        ({"q": "   "}, 400, "Type a few words or add a photo"),
        ({"q": "towel " * 1667}, 400, "characters long; the limit is 200"),
        ({"q": "?!... ---"}, 400, "no letters or digits"),
        ({"q": "the and of"}, 400, "only very common words"),
        ({"q": "towel", "price_min": "-5"}, 400, "Price min must be between 0"),
        ({"q": "towel", "price_min": "abc"}, 400, "Price min must be a number"),
        ({"q": "towel", "price_min": "900", "price_max": "100"}, 400, "minimum price is above the maximum"),
        ({"q": "towel", "page": "abc"}, 400, "Page must be a whole number"),
        ({"q": "towel", "page": "0"}, 400, "Page must be a whole number"),
        ({"q": "towel", "page": "²"}, 400, "Page must be a whole number"),
        ({"q": "towel", "sort": "cheapest"}, 400, "Unknown sort 'cheapest'"),
        ({"q": "towel", "category": ["Baby Care", "Watches"]}, 400, "Choose one category at a time"),
        ({"q": "towel", "img": "not-a-token"}, 400, "Your photo search expired; upload the photo again"),
    ],
)
def test_bad_search_parameters_get_400_with_the_reason(client, indexed_catalog, params, status, reason):
    response = client.get("/search/", params)

    assert response.status_code == status
    assert reason_in(response, reason), response.content.decode()[:3000]


def test_chinese_query_is_answered_with_a_notice(client, indexed_catalog):
    response = client.get("/search/", {"q": "毛巾"})

    assert response.status_code == 200
    assert "catalog is in English" in response.content.decode()
    assert response.context["page"].total > 0


def test_expired_photo_token_asks_for_the_photo_again(client, indexed_catalog):
    product = Product.objects.filter(pk__in=indexed_catalog.product_ids).order_by("pk")[3]
    token = parse_qs(urlparse(upload(client, catalog_photo(product))["Location"]).query)["img"][0]
    state_cache().delete(f"query-photo:{token}")  # what the store does after an hour

    response = client.get("/search/", {"img": token})

    assert response.status_code == 400
    assert reason_in(response, "Your photo search expired; upload the photo again")
    assert 'name="image"' in response.content.decode()  # the upload form is right there

    unknown = client.get("/search/", {"img": secrets.token_urlsafe(16)})
    assert unknown.status_code == 400


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("empty.jpg", lambda: b"", "The file is empty"),
        ("notes.jpg", lambda: NOT_AN_IMAGE, "not a photo we can open"),
        ("cut.jpg", lambda: jpeg_bytes()[:1500], "truncated or corrupt"),
        ("header.jpg", lambda: HEADER_CUT_JPEG, "truncated or corrupt"),
        ("bomb.png", lambda: png_with_declared_size(60_000, 60_000), "the limit is 40 megapixels"),
        ("big.png", lambda: png_bytes((8700, 5800), mode="L"), "8700x5800 px; the limit is 40 megapixels"),
        ("huge.jpg", lambda: OVERSIZED_JPEG, "The file is 11.0 MB; the limit is 10 MB"),
        ("tiny.png", lambda: png_bytes((4, 4)), "too small"),
    ],
)
def test_bad_photos_get_400_with_the_reason(client, indexed_catalog, name, make, reason):
    data = make()

    response = upload(client, data, name=name)

    assert response.status_code == 400
    assert reason_in(response, reason), response.content.decode()[:3000]


def test_big_photo_is_small_on_disk_but_50_megapixels():
    data = png_bytes((8700, 5800), mode="L")
    assert len(data) < 1_000_000
    assert 8700 * 5800 > 50_000_000


def test_photo_form_without_a_file_gets_400(client, indexed_catalog):
    response = client.post("/search/photo/", {"q": "towel"})

    assert response.status_code == 400
    assert reason_in(response, "Choose a photo to search with")


def test_oversized_form_data_gets_400_with_a_reason(client, indexed_catalog):
    response = client.post("/search/photo/", {"q": "x" * (3 * 1024 * 1024)})

    assert response.status_code == 400
    assert reason_in(response, "The form data is larger than 2.0 MB")


def test_photo_search_opened_by_get_leads_to_the_upload_form(client, indexed_catalog):
    response = client.get("/search/photo/")

    assert response.status_code == 302
    assert response["Location"] == "/#photo-search"


def test_control_characters_are_not_echoed_back(client, indexed_catalog):
    response = client.get("/search/", {"q": "\x00\x01"})

    assert response.status_code == 400
    assert reason_in(response, "Type a few words or add a photo")
    assert "\x00" not in response.content.decode()


def test_search_engine_failure_gives_503(client, indexed_catalog, tmp_path, monkeypatch):
    # given: an index whose BM25 part is damaged (a file where its directory should be)
    build = tmp_path / "products-broken"
    build.mkdir()
    (build / "bm25").write_text("not an index")
    (tmp_path / "products").symlink_to(build.name)
    import search.backends as backends

    monkeypatch.setitem(backends._instances, "default", load_backend(INDEX_DIR=tmp_path))

    # when
    response = client.get("/search/", {"q": "towel"})

    # then
    assert response.status_code == 503
    assert "Search is temporarily unavailable" in response.content.decode()


def test_the_photo_form_shares_the_api_photo_search_limit(client, settings, indexed_catalog):
    # given a photo-search budget of two per minute for an anonymous address
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "search_photo_anon": "2/minute"},
    }
    photo = jpeg_bytes()
    # when a third photo arrives within the minute, by the storefront form
    statuses = [upload(client, photo).status_code for _ in range(3)]
    # then it is refused with a reason and a wait, before any encoding, and words still search
    assert statuses == [302, 302, 429]
    refused = upload(client, photo)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many photo searches" in page_text(refused)
    assert client.get("/search/", {"q": "towel"}).status_code == 200
    # and the API's photo search shares the budget
    api = client.post("/api/search/image", {"image": SimpleUploadedFile("p.jpg", photo, content_type="image/jpeg")})
    assert api.status_code == 429
