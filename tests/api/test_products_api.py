"""Product writes through the API: bad input gets a 4xx with the field and the reason, and nothing is half-written."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from shop.models import Product, ProductImage


@pytest.fixture
def alice(world):
    return world.client("merchant_a")


def _snapshot():
    return sorted(Product.objects.values_list("pk", "title", "price", "list_price", "merchant_id"))


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "title", "required"),
        ({"title": "   "}, "title", "blank"),
        ({"title": "Towel", "price": "-5"}, "price", "greater than or equal to 0"),
        ({"title": "Towel", "price": "cheap"}, "price", "valid number"),
        ({"title": "Towel", "price": "1e400"}, "price", ""),
        ({"title": "Towel", "price": "100", "list_price": "50"}, "list_price", "cannot be below the price"),
        ({"title": "Towel", "currency": "rupees"}, "currency", "three-letter"),
        ({"title": "Towel", "rating": 7}, "rating", "less than or equal to 5"),
        ({"title": "Towel", "specifications": ["not", "an", "object"]}, "specifications", ""),
        ({"title": "Towel", "external_id": "bolt-1"}, "external_id", "already has the external id"),
        ({"title": "Towel", "category": " > ".join(["level"] * 9)}, "category", "the limit is 6"),
        ({"title": "x" * 501}, "title", "no more than 500"),
        ({"title": "Towel", "merchant": "no-such-merchant"}, "merchant", "does not exist"),
    ],
)
def test_bad_product_input_is_400_and_writes_nothing(world, alice, body, field, reason):
    before = _snapshot()

    response = alice.post("/api/products/", body, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field and reason in error["message"]
    assert _snapshot() == before


def test_several_bad_fields_are_all_listed(alice):
    response = alice.post("/api/products/", {"price": "-1", "rating": 9}, format="json")

    error = response.json()["error"]
    assert set(error["details"]) == {"title", "price", "rating"}


def test_negative_price_on_update_changes_nothing(world, alice):
    response = alice.patch(f"/api/products/{world.product_a.pk}/", {"title": "New name", "price": "-1"}, format="json")

    assert response.status_code == 400 and response.json()["error"]["field"] == "price"
    world.product_a.refresh_from_db()
    assert world.product_a.title == "Acme cotton bath towel"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [("title=Towel", "application/x-www-form-urlencoded"), ("title: Towel", "text/plain"), ("<p/>", "application/xml")],
)
def test_wrong_content_type_is_415(world, alice, content, content_type):
    before = _snapshot()

    response = alice.generic("POST", "/api/products/", content, content_type=content_type)

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert _snapshot() == before


def test_malformed_json_is_400_parse_error(alice):
    response = alice.generic("POST", "/api/products/", '{"title": "Towel",', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert response.json()["error"]["message"] == (
        "The request body is not valid JSON (line 1, column 19); check its quotes, commas and brackets.")


@pytest.mark.parametrize(("body", "message"), [
    (b'{"title": "Towel \xff"}', "The request body is not UTF-8 text; send JSON encoded as UTF-8."),
    (b'{"title": "Towel", "price": NaN}', "The request body holds NaN or Infinity, which JSON does not allow; send a number or null."),
])
def test_a_body_json_cannot_take_is_400_in_plain_words(alice, body, message):
    response = alice.generic("POST", "/api/products/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == {**response.json()["error"], "code": "parse_error", "message": message}


def test_create_with_brand_and_category_paths(alice, world):
    response = alice.post(
        "/api/products/",
        {"title": "Acme hand towel", "brand": "Acme", "category": "Home > Bath > Towels", "price": "199.00",
         "list_price": "249.00", "specifications": {"material": "cotton"}, "external_id": "acme-2"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["brand"], body["category"], body["price"], body["merchant"]) == ("Acme", "Home > Bath > Towels", "199.00", world.merchant_a.slug)
    assert body["index_state"] == "pending"


def test_unknown_product_and_unknown_path_are_json_404(client, world):
    assert client.get("/api/products/999999/").json()["error"]["code"] == "not_found"
    assert client.get("/api/products/abc/").status_code == 404
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert "did you mean /api/products/" in client.post("/api/products").json()["error"]["message"]


def test_list_pages(world):
    client = world.client("anonymous")

    first = client.get("/api/products/")
    last = client.get("/api/products/", {"page": "last"})

    assert first.status_code == 200 and first.json()["count"] == 3 and first.json()["next"] is None
    assert last.status_code == 200 and [p["id"] for p in last.json()["results"]] == [p["id"] for p in first.json()["results"]]


@pytest.mark.parametrize("page", ["zero", "abc", "0", "-1", "1.5", "1e3", "²", "9" * 5000])
def test_a_malformed_page_number_is_400_naming_the_page(world, page):
    response = world.client("anonymous").get("/api/products/", {"page": page})

    assert response.status_code == 400, response.content
    assert response.json() == {"error": {
        "code": "invalid", "field": "page", "message": "The page must be a whole number from 1 (or 'last').",
    }}


def test_a_page_past_the_end_is_404_naming_the_page(world):
    response = world.client("anonymous").get("/api/products/", {"page": "99999"})

    assert response.status_code == 404
    assert response.json() == {"error": {
        "code": "not_found", "field": "page", "message": "Page 99999 is past the end: the last page is 1 (3 results, 24 per page).",
    }}


def test_the_first_page_of_an_empty_list_is_empty_not_404(world):
    response = world.client("anonymous").get("/api/products/", {"merchant": "nobody", "page": "1"})

    assert response.status_code == 200 and response.json()["results"] == []


def test_delete_removes_the_product_and_its_photos(world, alice):
    alice.post(f"/api/products/{world.product_a.pk}/images/", {"image": ContentFile(b"x", name="x.jpg")}, format="multipart")

    response = alice.delete(f"/api/products/{world.product_a.pk}/")

    assert response.status_code == 204
    assert not Product.objects.filter(pk=world.product_a.pk).exists()
    assert not ProductImage.objects.filter(product_id=world.product_a.pk).exists()


def test_index_state_shows_the_failure_reason_to_the_owner(world, alice):
    Product.objects.filter(pk=world.product_a.pk).update(index_state="failed", index_error="Photo 'a.jpg' was not used: corrupt.")

    body = alice.get(f"/api/products/{world.product_a.pk}/index-state/").json()

    assert body["index_state"] == "failed" and "corrupt" in body["index_error"]


def test_list_page_size_is_honoured_and_a_bad_one_is_refused(world):
    client = world.client("anonymous")

    two = client.get("/api/products/", {"page_size": "2"}).json()
    rest = client.get(two["next"]).json()

    assert len(two["results"]) == 2 and two["count"] == 3 and "page_size=2" in two["next"]
    assert len(rest["results"]) == 1
    for bad in ("abc", "0", "-1", "101", "²"):
        response = client.get("/api/products/", {"page_size": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["field"] == "page_size"


def test_mine_must_be_true_or_false(world):
    client = world.client("merchant_a")

    assert [p["id"] for p in client.get("/api/products/", {"mine": "true"}).json()["results"]] == [world.product_a.pk]
    assert client.get("/api/products/", {"mine": "false"}).json()["count"] == 3
    refused = client.get("/api/products/", {"mine": "maybe"})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "mine"
