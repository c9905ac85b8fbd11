"""End to end on a real sample of the Flipkart catalog (67 products, all 7 categories), imported
and indexed with the real encoders: what a shopper gets for words, photos, filters and pages."""

from __future__ import annotations

import io
import json
import re
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connections
from PIL import Image

from search.backends import get_backend
from search.query import MAX_QUERY_CHARS
from search.request import SearchRequestError, parse_search_request
from shop.models import IndexState, Product

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ROOT_CATEGORIES = [
    "Home Furnishing", "Watches", "Home Decor & Festive Needs", "Kitchen & Dining", "Baby Care",
    "Beauty and Personal Care", "Computers",
]


@pytest.fixture
def catalog(indexed_catalog):
    return indexed_catalog


def search(params: dict, **kwargs):
    return parse_search_request(params, **kwargs).run()


def shopper_photo(product: Product, *, angle: float = 12.0) -> bytes:
    """The product's own photo as a shopper might send it: 80% centre crop, rotated, JPEG quality 40."""
    with product.primary_image.image.open("rb") as fh:
        image = Image.open(io.BytesIO(fh.read())).convert("RGB")
    w, h = image.size
    image = image.crop((int(w * 0.1), int(h * 0.1), int(w * 0.9), int(h * 0.9)))
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=40)
    return buf.getvalue()


def first_product_in(root: str) -> Product:
    return Product.objects.filter(category__path__startswith=root).prefetch_related("images").order_by("pk").first()


# -- words ---------------------------------------------------------------------------------------------
def test_cotton_bath_towel_finds_towels_first(catalog):
    # when
    page = search({"q": "cotton bath towel"})
    # then
    assert all("towel" in p.title.lower() for p in page.products[:3]), [p.title for p in page.products[:3]]


def test_cotton_bath_towel_answers_about_the_towels_not_a_tail_of_weak_neighbours(catalog, settings):
    # when: the storefront's match cut-off (every query term in the product, kNN hits near the best)
    page = search({"q": "cotton bath towel"}, per_page=50)
    # then: the sample's four towels lead, and at most one other product follows
    titles = [p.title.lower() for p in page.products]
    towels = [t for t in titles if "towel" in t]
    assert len(towels) == 4 and titles[:4] == towels, titles
    assert page.total == len(page.products) <= 5
    assert sum(f.count for f in page.facets["price"]) == page.total
    # and without it, the same query lists a tail of the sample's weak neighbours
    settings.SEARCH_MATCH_MIN_COVERAGE = 0.0
    settings.SEARCH_EXACT_MATCH_BOOST, settings.SEARCH_EXACT_ENOUGH, settings.SEARCH_KNN_ONLY_MIN_COSINE = 0.0, 0, {}  # read coverage too
    settings.SEARCH_KNN_MIN_RATIO = {**settings.SEARCH_KNN_MIN_RATIO, "text": 0.5, "fused": 0.5}
    wider = search({"q": "cotton bath towel"}, per_page=50)
    assert wider.total >= page.total + 10
    assert sum("towel" not in p.title.lower() for p in wider.products) >= 10


def test_women_watch_by_price_lists_only_watches(catalog):
    # when
    page = search({"q": "women watch", "sort": "price_asc"}, per_page=10)
    # then
    assert page.products and all("watch" in p.title.lower() for p in page.products), [p.title for p in page.products]
    prices = [p.price for p in page.products]
    assert prices == sorted(prices)


def test_results_explain_their_score(catalog):
    # when
    top = search({"q": "analog watch for men"}).products[0]
    # then
    assert "watch" in top.title.lower()
    assert {"bm25", "text_knn"} <= set(top.search_explain)
    parts = [v["contribution"] for k, v in top.search_explain.items() if k != "score"]
    assert top.search_explain["score"] == pytest.approx(sum(parts), abs=1e-5)


# -- photos ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("root", ROOT_CATEGORIES)
def test_a_products_own_photo_cropped_rotated_and_recompressed_finds_it_first(catalog, root):
    # given
    product = first_product_in(root)
    # when
    page = search({}, image_bytes=shopper_photo(product))
    # then
    assert page.products[0].pk == product.pk, (product.title, [p.title for p in page.products[:3]])
    assert "image_knn" in page.products[0].search_explain


def test_photo_rotated_the_other_way_still_finds_the_product(catalog):
    # given
    product = first_product_in("Kitchen & Dining")
    # when
    page = search({}, image_bytes=shopper_photo(product, angle=-15))
    # then
    assert page.products[0].pk == product.pk


def test_photo_and_words_together_find_the_product_and_use_both(catalog, settings):
    # given the fused blend (SEARCH_COMPOSE="fused"; the composed default: tests/test_compose.py)
    settings.SEARCH_COMPOSE = "fused"
    towel = Product.objects.filter(title__icontains="towel").prefetch_related("images").order_by("pk").first()
    # when
    page = search({"q": "towel"}, image_bytes=shopper_photo(towel))
    # then
    assert page.products[0].pk == towel.pk
    assert {"bm25", "text_knn", "image_knn", "fused_knn"} <= set(page.products[0].search_explain)
    assert all("towel" in p.title.lower() for p in page.products[:3])


def test_a_bad_photo_is_refused_with_the_reason(catalog):
    # when / then
    with pytest.raises(SearchRequestError) as caught:
        parse_search_request({"q": "towel"}, image_bytes=b"GIF89a but not really")
    assert caught.value.field == "image"
    assert caught.value.reason.startswith("This file is not a photo we can open")


# -- filters, facets, pages, sorting -----------------------------------------------------------------------
def test_category_filter_keeps_only_that_branch(catalog):
    # when
    page = search({"q": "cotton", "category": "Home Furnishing"}, per_page=100)
    # then
    assert page.products
    assert all(p.category.path.startswith("Home Furnishing") for p in page.products)
    assert page.total == len(page.products)


def test_brand_and_price_filters_apply_together(catalog):
    # given: a brand of the sample with a product between 100 and 5,000
    product = Product.objects.filter(brand__isnull=False, price__range=(100, 5000)).select_related("brand").order_by("pk").first()
    # when
    page = search({"q": product.title[:100], "brand": [product.brand.name], "price_min": "100", "price_max": "5000"})
    # then
    assert product.pk in [p.pk for p in page.products]
    assert all(p.brand_id == product.brand_id and Decimal(100) <= p.price <= Decimal(5000) for p in page.products)


def test_filters_alone_browse_the_category(catalog):
    # when
    page = search({"category": "Watches"}, per_page=100)
    # then
    assert page.total == Product.objects.filter(category__path__startswith="Watches").count()


def test_facets_count_the_matching_products(catalog):
    # when
    page = search({"q": "cotton"}, per_page=5)
    # then
    categories = {f.value: f.count for f in page.facets["category"]}
    assert sum(categories.values()) == page.total
    assert set(categories) <= set(ROOT_CATEGORIES)
    assert sum(f.count for f in page.facets["price"]) == page.total


def test_page_two_follows_page_one_without_overlap(catalog):
    # when
    first = search({"q": "cotton", "page": "1"}, per_page=5)
    second = search({"q": "cotton", "page": "2"}, per_page=5)
    # then
    assert len(first.products) == len(second.products) == 5
    assert not {p.pk for p in first.products} & {p.pk for p in second.products}
    assert first.total == second.total > 10
    assert first.products[-1].search_score >= second.products[0].search_score


def test_page_past_the_end_is_empty_but_keeps_the_total(catalog):
    # when
    first = search({"q": "cotton"}, per_page=5)
    past = search({"q": "cotton", "page": "199"}, per_page=5)
    # then
    assert past.products == []
    assert past.total == first.total


def test_sort_by_price_ascending_really_ascends_across_pages(catalog):
    # when
    pages = [search({"q": "cotton", "sort": "price_asc", "page": str(n)}, per_page=5) for n in (1, 2, 3)]
    # then
    prices = [p.price for page in pages for p in page.products]
    assert len(prices) == 15
    assert prices == sorted(prices)
    assert prices[0] < prices[-1]


def test_sort_by_price_descending(catalog):
    # when
    page = search({"q": "watch", "sort": "price_desc"}, per_page=10)
    # then
    prices = [p.price for p in page.products]
    assert prices == sorted(prices, reverse=True)


@pytest.mark.parametrize("params, field, reason", [
    ({"q": "towel", "sort": "cheapest"}, "sort", "Unknown sort 'cheapest'; choose one of relevance, price_asc, price_desc, rating."),
    ({"q": "towel", "page": "0"}, "page", "Page must be a whole number from 1 to 200."),
    ({"q": "towel", "page": "two"}, "page", "Page must be a whole number from 1 to 200."),
    ({"q": "towel", "price_min": "cheap"}, "price_min", "Price min must be a number, got 'cheap'."),
    ({"q": "towel", "price_min": "500", "price_max": "100"}, "price_min", "The minimum price is above the maximum price."),
    ({"q": "towel", "price_max": "nan"}, "price_max", "Price max must be between 0 and 10,000,000."),
    ({"q": "towel", "fusion": "borda"}, "fusion", "Unknown fusion 'borda'; choose one of rrf, linear."),
])
def test_bad_parameters_are_refused_with_a_reason(catalog, params, field, reason):
    # when / then
    with pytest.raises(SearchRequestError) as caught:
        parse_search_request(params)
    assert (caught.value.field, caught.value.reason) == (field, reason)


# -- bad queries -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("query, reason", [
    ("", "Type a few words or add a photo to search."),
    ("   \t\n ", "Type a few words or add a photo to search."),
    ("towel " * 2000, f"The search is 11,999 characters long; the limit is {MAX_QUERY_CHARS}. Try a few key words."),
    ("?!... ;; --", "The search has no letters or digits. Try words such as 'cotton towel'."),
    ("the and of", "'the and of' has only very common words. Add what you are looking for, e.g. 'watch for men'."),
])
def test_unusable_queries_are_refused_with_a_reason(catalog, query, reason):
    # when / then
    with pytest.raises(SearchRequestError) as caught:
        parse_search_request({"q": query})
    assert (caught.value.field, caught.value.reason) == ("q", reason)


def test_ten_thousand_character_query_is_refused(catalog):
    # when / then
    with pytest.raises(SearchRequestError, match="The search is 10,000 characters long"):
        parse_search_request({"q": "a" * 10_000})


@pytest.mark.parametrize("query", ["纯棉浴巾", "我想买一条纯棉的浴巾和一个手表"])
def test_chinese_query_returns_results_with_a_notice(catalog, query):
    # when
    page = search({"q": query})
    # then
    assert page.notices == [
        "This shop's catalog is in English; words in other languages are matched by meaning "
        "and by product text in the same language, so results may be less precise."
    ]
    assert page.total > 0


def test_query_with_search_syntax_is_searched_as_words(catalog):
    # when
    page = search({"q": 'title:"towel" AND (cotton*'})
    # then
    assert "towel" in page.products[0].title.lower()


# -- commands --------------------------------------------------------------------------------------------------
def test_search_command_prints_a_json_list_with_score_parts(catalog):
    # given
    out = io.StringIO()
    # when
    call_command("search", "cotton bath towel", "--json", "--limit", "3", stdout=out)
    # then (the sample holds 4 products with every word of the query)
    rows = json.loads(out.getvalue())
    assert len(rows) == 3
    assert set(rows[0]) == {"id", "external_id", "title", "score", "explain"}
    assert "towel" in rows[0]["title"].lower()
    assert rows[0]["external_id"] == Product.objects.get(pk=rows[0]["id"]).external_id
    assert rows[0]["explain"]["score"] == pytest.approx(rows[0]["score"], abs=1e-6)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_search_command_with_a_photo(catalog, tmp_path):
    # given
    product = first_product_in("Watches")
    photo = tmp_path / "shopper.jpg"
    photo.write_bytes(shopper_photo(product))
    out = io.StringIO()
    # when
    call_command("search", "--image", str(photo), "--json", "--limit", "3", stdout=out)
    # then
    assert json.loads(out.getvalue())[0]["id"] == product.pk


def test_search_status_shows_the_count_of_each_state(catalog):
    # given
    out = io.StringIO()
    expected = {state.label: Product.objects.filter(index_state=state.value).count() for state in IndexState}
    # when
    call_command("search_status", stdout=out)
    # then
    text = out.getvalue()
    for label, count in expected.items():
        assert re.search(rf"{label}\s*│\s*{count}\s*│", text), text
    assert expected["Indexed"] == Product.objects.count()
    assert f"documents={Product.objects.count()}" in text


def test_reindex_keeps_search_answering_and_ends_with_every_product(catalog):
    # given: a shopper searching in a loop while the index is rebuilt
    stop = threading.Event()
    totals: list[int] = []
    errors: list[BaseException] = []

    def shopper():
        try:
            while not stop.is_set():
                try:
                    totals.append(search({"q": "towel"}).total)
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion
                    errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=shopper)
    thread.start()
    out = io.StringIO()
    try:
        while not totals and thread.is_alive():
            stop.wait(0.05)
        # when
        before = len(totals)
        call_command("reindex", "--batch-size", "16", stdout=out)
        after_swap = len(totals)
        while len(totals) < after_swap + 3 and thread.is_alive():
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(60)
    # then
    assert errors == []
    assert after_swap > before, "no search ran while the index was rebuilt"
    assert all(t > 0 for t in totals)
    assert get_backend().count() == Product.objects.count()
    assert get_backend().ids() == set(Product.objects.values_list("pk", flat=True))
    assert f"Reindexed {Product.objects.count()} products" in out.getvalue()
