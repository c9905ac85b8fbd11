"""Typos, identifiers, query syntax and honest empty answers on the real Flipkart sample, through
the REST API and the search page (real encoders, the embedded engine, SQLite).

Two real catalog rows join the session's sample for this module (the only Samsung product of
the catalog and a T STAR watch with a style code) and leave with it."""

from __future__ import annotations

import csv
import re

import pytest
from rest_framework.test import APIClient

from search.request import parse_search_request
from shop.models import Product
from tests.conftest import flipkart_dir

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

SAMSUNG_HUB = "de47d0cc0c4875fb97530f66d934c894"  # "KLIQVIK SIX PORT USB HUB FOR SAMSUNG MOBILES TR-252 USB USB Hub"
TSTAR_WATCH = "dd0e3470a7e6ed76fd69c2da27721041"  # "T STAR UFT-TSW-005-BK-BR Analog Watch - For Boys"
OPERATORS_NOTICE = ("Search operators (field names such as title:, AND / OR / NOT, brackets and wildcards) are not used here: "
                    "we searched for the words “foo”.")


def source_row(external_id: str) -> dict:
    with (flipkart_dir() / "products.csv").open(newline="", encoding="utf-8") as fh:
        return next(r for r in csv.DictReader(fh) if r["uniq_id"] == external_id)


@pytest.fixture(scope="module")
def catalog(indexed_catalog, django_db_blocker):
    """The session's sample plus the two rows above (imported and indexed here, deleted after)."""
    from search.services import products_index
    from shop.importers import read_catalog
    from shop.services import catalog_import

    with django_db_blocker.unblock():
        present = set(Product.objects.filter(external_id__in=[SAMSUNG_HUB, TSTAR_WATCH]).values_list("external_id", flat=True))
        rows = [r for r in read_catalog("flipkart", flipkart_dir()) if r.external_id in {SAMSUNG_HUB, TSTAR_WATCH} - present]
        added = catalog_import(rows).product_ids if rows else []
        products_index(product_ids=added)
    yield
    with django_db_blocker.unblock():
        for product in Product.objects.filter(pk__in=added):
            product.delete()


@pytest.fixture
def api(catalog) -> APIClient:
    return APIClient()


def titles(body: dict, n: int) -> list[str]:
    return [r["title"] for r in body["results"][:n]]


# -- query syntax ---------------------------------------------------------------------------------------------
def test_operator_soup_is_searched_as_words_and_says_nothing_matches(api):
    body = api.get("/api/search", {"q": "title:foo AND ("}).json()
    assert body["count"] <= 5
    assert body["count"] == 0 and body["results"] == [] and body["match"] == "none"
    assert body["query"] == "foo"
    assert body["notices"] == [OPERATORS_NOTICE, "No products match “foo”."]


# -- typos ------------------------------------------------------------------------------------------------------
def test_a_misspelt_query_is_corrected_and_finds_towels(api):
    body = api.get("/api/search", {"q": "cotten towl"}).json()
    assert body["corrected_query"] == "cotton towel" and body["query"] == "cotton towel" and body["did_you_mean"] is None
    assert all("towel" in t.lower() for t in titles(body, 3)), titles(body, 3)
    assert body["notices"] == ["Showing results for “cotton towel”; search instead for “cotten towl” with autocorrect=false."]


def test_searching_instead_for_the_typed_words_offers_the_correction(api):
    body = api.get("/api/search", {"q": "cotten towl", "autocorrect": "false"}).json()
    assert body["corrected_query"] is None and body["did_you_mean"] == "cotton towel" and body["query"] == "cotten towl"
    # no product holds the typed words: said so, with the suggestion
    assert body["match"] in ("none", "similar")
    assert body["notices"][0].startswith("No products match “cotten towl”. Did you mean “cotton towel”?")


def test_a_misspelt_brand_finds_the_brand(api):
    body = api.get("/api/search", {"q": "samsnug"}).json()
    assert body["corrected_query"] == "samsung"
    assert body["results"][0]["external_id"] == SAMSUNG_HUB


def test_a_correctly_spelt_query_is_ranked_exactly_as_without_correction(catalog):
    for q in ("cotton bath towel", "women watch", "baby shirt"):
        corrected = parse_search_request({"q": q}).run()
        typed = parse_search_request({"q": q, "autocorrect": "false"}).run()
        assert corrected.corrected_query is None and typed.suggestion is None
        assert [p.pk for p in corrected.products] == [p.pk for p in typed.products]


def test_autocorrect_must_be_true_or_false(api):
    response = api.get("/api/search", {"q": "towel", "autocorrect": "maybe"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "autocorrect"


# -- identifiers ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("query", [TSTAR_WATCH, "UFT-TSW-005", "uft-tsw-005-bk-br", "pid"])
def test_an_identifier_finds_its_product_first(api, query):
    if query == "pid":
        query = source_row(TSTAR_WATCH)["pid"]  # the source's own product id
    body = api.get("/api/search", {"q": query}).json()
    assert body["results"][0]["external_id"] == TSTAR_WATCH, titles(body, 3)
    assert body["match"] == "text" and body["corrected_query"] is None


def test_every_product_of_the_sample_is_first_for_its_own_external_id(catalog):
    for product in Product.objects.exclude(external_id=None).order_by("pk")[:20]:
        page = parse_search_request({"q": product.external_id}).run()
        assert page.products[0].pk == product.pk, product.external_id


# -- honest empty -----------------------------------------------------------------------------------------------------
def test_words_no_product_holds_show_similar_products_only_when_close_in_meaning(api, settings):
    settings.SEARCH_SIMILAR_MIN_COSINE = 0.0
    similar = api.get("/api/search", {"q": "sneakers"}).json()
    settings.SEARCH_SIMILAR_MIN_COSINE = 0.99
    nothing = api.get("/api/search", {"q": "sneakers"}).json()
    assert similar["match"] == "similar" and similar["count"] > 0
    assert similar["notices"] == ["No products match “sneakers”. These products are close in meaning."]
    assert nothing["match"] == "none" and nothing["count"] == 0 and nothing["facets"]["brand"] == []


def test_a_brand_searches_the_products_that_name_it_not_its_neighbours_in_meaning(api):
    # the sample's only product that says Samsung; its nearest neighbours in meaning (watches, routers) are far
    body = api.get("/api/search", {"q": "samsung"}).json()
    assert body["match"] == "text" and body["results"][0]["external_id"] == SAMSUNG_HUB
    named = Product.objects.filter(pk__in=[r["id"] for r in body["results"]])
    assert all("samsung" in f"{p.title} {p.description}".lower() for p in named), [p.title for p in named]
    assert body["count"] == len(body["results"]) <= 3


def test_words_no_product_holds_together_say_so_instead_of_padding(api):
    # "script" or "alert" alone may be somewhere; no product holds both, and nothing is close in meaning
    body = api.get("/api/search", {"q": "script alert"}).json()
    assert body["count"] <= 5 and body["match"] in ("none", "similar")
    assert body["notices"][0].startswith("No products match “script alert”.")


def test_a_query_no_product_holds_every_word_of_shows_at_most_the_similar_limit(api, settings):
    settings.SEARCH_SIMILAR_MIN_COSINE = 0.0
    settings.SEARCH_SIMILAR_LIMIT = 3
    body = api.get("/api/search", {"q": "sneakers"}).json()
    assert body["match"] == "similar" and body["count"] == 3
    assert body["notices"] == ["No products match “sneakers”. These products are close in meaning."]


# -- the page ---------------------------------------------------------------------------------------------------------
def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_page_shows_results_for_the_correction_and_links_to_the_typed_words(client, catalog):
    html = client.get("/search/", {"q": "cotten towl"}).content.decode()
    assert "Showing results for cotton towel . Search instead for cotten towl" in text_of(html)
    link = re.search(r'Search instead for <a href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert link == "/search/?q=cotten+towl&autocorrect=false"
    typed = client.get(link).content.decode()
    assert "Did you mean cotton towel ?" in text_of(typed)
    assert re.search(r'Did you mean <a href="/search/\?q=cotton\+towel">', typed)


def test_the_page_says_no_products_match_and_why_the_operators_went(client, catalog):
    html = client.get("/search/", {"q": "title:foo AND ("}).content.decode()
    assert "No products match “foo”" in html
    assert OPERATORS_NOTICE in html
    assert 'class="card product-card' not in html


def test_the_schema_documents_the_correction_fields_and_the_autocorrect_parameter(client):
    schema = client.get("/api/schema/?format=json").json()
    page = schema["components"]["schemas"]["SearchPage"]
    assert {"query", "corrected_query", "did_you_mean", "match"} <= set(page["required"])
    assert page["properties"]["corrected_query"]["nullable"] is True
    assert "autocorrect" in {p["name"] for p in schema["paths"]["/api/search"]["get"]["parameters"]}
