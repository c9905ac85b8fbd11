"""GET /api/search and POST /api/search/image over the real Flipkart sample, indexed with the real models."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.http import QueryDict
from PIL import Image
from rest_framework.test import APIClient

from search.backends.base import SearchUnavailable
from search.request import parse_search_request
from shop.api.errors import exception_handler
from shop.models import Product
from tests.api.images import photo_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def api(indexed_catalog) -> APIClient:
    return APIClient()


def test_text_search_finds_towels_and_matches_the_storefront(api):
    # when
    response = api.get("/api/search", {"q": "cotton bath towel"})

    # then towels come first, in exactly the order the storefront's search gives
    assert response.status_code == 200
    body = response.json()
    assert body["count"] > 0 and body["page"] == 1
    assert "towel" in body["results"][0]["title"].lower()
    storefront = parse_search_request(QueryDict("q=cotton+bath+towel")).run()
    assert [r["id"] for r in body["results"]] == [p.id for p in storefront.products]
    assert "explain" not in body["results"][0]


def test_explain_gives_the_score_parts(api):
    body = api.get("/api/search", {"q": "cotton bath towel", "explain": "true"}).json()

    parts = body["results"][0]["explain"]
    assert {"bm25", "text_knn", "fused_knn"} <= set(parts)
    assert parts["score"] == pytest.approx(body["results"][0]["score"], abs=1e-5)


def test_filters_and_pages(api):
    everything = api.get("/api/search", {"q": "men", "page_size": 5}).json()
    brand = everything["facets"]["brand"][0]["value"]

    filtered = api.get("/api/search", {"q": "men", "brand": brand, "page_size": 50}).json()
    cheap = api.get("/api/search", {"q": "men", "price_max": 500, "page_size": 50}).json()
    page2 = api.get("/api/search", {"q": "men", "page_size": 5, "page": 2}).json()

    assert filtered["count"] == everything["facets"]["brand"][0]["count"]
    assert {r["brand"] for r in filtered["results"]} == {brand}
    assert all(float(r["price"]) <= 500 for r in cheap["results"]) and cheap["count"] < everything["count"]
    assert everything["num_pages"] >= 2 and "page=2" in everything["next"]
    assert {r["id"] for r in page2["results"]}.isdisjoint({r["id"] for r in everything["results"]})
    assert page2["previous"] is not None


def test_an_unknown_category_answers_no_results_and_says_why(api):
    known = api.get("/api/search", {"q": "towel", "page_size": 1}).json()["facets"]["category"][0]["value"]

    unknown = api.get("/api/search", {"q": "towel", "category": "Bath Linnen"}).json()
    existing = api.get("/api/search", {"q": "towel", "category": known}).json()

    assert unknown["count"] == 0
    assert any("There is no category “Bath Linnen”" in n for n in unknown["notices"])
    assert existing["count"] > 0 and not any("There is no category" in n for n in existing["notices"])


def test_sort_by_price(api):
    results = api.get("/api/search", {"q": "men", "sort": "price_asc", "page_size": 30}).json()["results"]

    prices = [float(r["price"]) for r in results if r["price"] is not None]
    assert prices == sorted(prices) and len(prices) > 5


def test_query_in_chinese_is_answered_with_a_notice(api):
    response = api.get("/api/search", {"q": "毛巾"})

    assert response.status_code == 200
    assert any("English" in n for n in response.json()["notices"])


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"q": ""}, "q", "Type a few words"),
        ({"q": "x" * 10_000}, "q", "10,000 characters"),
        ({"q": "?!…"}, "q", "no letters or digits"),
        ({"q": "the and of"}, "q", "only very common words"),
        ({"q": "towel", "price_min": "-1"}, "price_min", "between 0"),
        ({"q": "towel", "price_min": "cheap"}, "price_min", "must be a number"),
        ({"q": "towel", "price_min": "500", "price_max": "100"}, "price_min", "above the maximum"),
        ({"q": "towel", "sort": "random"}, "sort", "Unknown sort"),
        ({"q": "towel", "page": "0"}, "page", "whole number"),
        ({"q": "towel", "page": "two"}, "page", "whole number"),
        ({"q": "towel", "page": "abc"}, "page", "whole number"),
        ({"q": "towel", "page": "-1"}, "page", "whole number"),
        ({"q": "towel", "page": "99999"}, "page", "from 1 to 200"),
        ({"q": "towel", "page": "²"}, "page", "whole number"),
        ({"q": "towel", "page": "9" * 5000}, "page", "whole number"),
        ({"q": "towel", "page_size": "²"}, "page_size", "1 to 100"),
        ({"q": "towel", "page_size": "1000"}, "page_size", "1 to 100"),
        ({"q": "towel", "explain": "maybe"}, "explain", "true or false"),
        ({"q": "towel", "fusion": "magic"}, "fusion", "Unknown fusion"),
    ],
)
def test_bad_search_input_is_400_with_the_field_and_reason(api, params, field, reason):
    response = api.get("/api/search", params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == field and reason in error["message"]


def _catalog_photo(product: Product) -> bytes:
    """The product's own photo, cropped, rotated and recompressed (as a shopper's snapshot)."""
    with product.primary_image.image.open("rb") as fh:
        image = Image.open(fh).convert("RGB")
    w, h = image.size
    image = image.crop((w // 10, h // 10, w - w // 10, h - h // 10)).rotate(8, expand=True, fillcolor=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def test_photo_search_finds_the_product_first(api):
    product = Product.objects.filter(title__icontains="towel", images__isnull=False).first()

    response = api.post("/api/search/image", {"image": ContentFile(_catalog_photo(product), name="snap.jpg")}, format="multipart")

    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["id"] == product.pk


def _get(api: APIClient, url: str):
    """GET an absolute link from a response body, as a client following ``next`` would."""
    parts = urlsplit(url)
    return api.get(f"{parts.path}?{parts.query}")


def test_photo_search_pages_by_its_token_without_a_second_upload(api):
    product = Product.objects.filter(title__icontains="towel", images__isnull=False).first()
    photo = _catalog_photo(product)

    first = api.post("/api/search/image", {"image": ContentFile(photo, name="snap.jpg"), "page_size": "2"}, format="multipart").json()
    second = _get(api, first["next"])
    back = _get(api, second.json()["previous"])
    uploaded_again = api.post(
        "/api/search/image", {"image": ContentFile(photo, name="snap.jpg"), "page_size": "2", "page": "2"}, format="multipart",
    ).json()

    # then page 2 by token is exactly page 2 of a second upload, and "previous" leads back to page 1
    assert first["previous"] is None and len(first["photo"]) == 22
    assert parse_qs(urlsplit(first["next"]).query) == {"photo": [first["photo"]], "page_size": ["2"], "page": ["2"]}
    assert second.status_code == 200, second.content
    assert second.json()["page"] == 2 and second.json()["count"] == first["count"] == uploaded_again["count"]
    assert [r["id"] for r in second.json()["results"]] == [r["id"] for r in uploaded_again["results"]]
    assert [r["id"] for r in back.json()["results"]] == [r["id"] for r in first["results"]]
    assert second.json()["photo"] == first["photo"]


def test_photo_pages_keep_the_words_and_filters(api):
    product = Product.objects.filter(title__icontains="towel", images__isnull=False).select_related("category").first()
    root = product.category.path.split(" > ")[0]
    upload = {"image": ContentFile(_catalog_photo(product), name="snap.jpg"), "q": "towel", "category": root, "page_size": "2"}

    first = api.post("/api/search/image", upload, format="multipart").json()
    second = _get(api, first["next"]).json()

    assert parse_qs(urlsplit(first["next"]).query)["q"] == ["towel"]
    assert second["page"] == 2 and second["count"] == first["count"]
    assert second["results"] and all(r["category"].startswith(root) for r in second["results"])


def test_an_expired_photo_token_is_410_asking_for_the_photo_again(api, settings):
    settings.SEARCH_PHOTO_TTL_S = 0  # the cache forgets the photo at once, as it does after the TTL
    product = Product.objects.filter(title__icontains="towel", images__isnull=False).first()
    upload = {"image": ContentFile(_catalog_photo(product), name="snap.jpg"), "page_size": "2"}
    first = api.post("/api/search/image", upload, format="multipart")

    expired = _get(api, first.json()["next"])
    unknown = api.get("/api/search/image", {"photo": "A" * 22})

    assert first.status_code == 200
    for response in (expired, unknown):
        assert response.status_code == 410
        error = response.json()["error"]
        assert error["code"] == "photo_expired" and error["field"] == "photo"
        assert "upload the photo again with POST /api/search/image" in error["message"]


@pytest.mark.parametrize("params", [{}, {"photo": ""}, {"photo": "not-a-token"}, {"photo": "A" * 23}, {"photo": "A" * 21 + "/"}])
def test_a_missing_or_malformed_photo_token_is_400(api, params):
    response = api.get("/api/search/image", params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "photo" and "POST /api/search/image" in error["message"]


def test_photo_with_words_and_filters(api, settings):
    settings.SEARCH_COMPOSE = "fused"  # the fused blend's explanation; the composed default: tests/test_compose.py
    product = Product.objects.filter(title__icontains="towel", images__isnull=False).select_related("category").first()
    root = product.category.path.split(" > ")[0]

    response = api.post(
        "/api/search/image",
        {"image": ContentFile(_catalog_photo(product), name="snap.jpg"), "q": "towel", "category": root, "explain": "1"},
        format="multipart",
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["id"] == product.pk and "image_knn" in results[0]["explain"]
    assert all(r["category"].startswith(root) for r in results)


def _fifty_megapixels() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (8660, 5774)).save(buf, format="PNG")  # a 50 MP photo, a few kilobytes as 1-bit PNG
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (_fifty_megapixels(), "megapixels"),
        (b"<html><body>not a photo</body></html>", "not a photo we can open"),
        (photo_bytes()[:300], "truncated or corrupt"),
    ],
)
def test_unusable_photos_are_400_image_rejected(api, data, reason):
    response = api.post("/api/search/image", {"image": ContentFile(data, name="photo.jpg")}, format="multipart")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "image_rejected" and error["field"] == "image" and reason in error["message"]


def test_photo_search_needs_multipart_and_a_photo(api):
    as_json = api.post("/api/search/image", {"q": "towel"}, format="json")
    no_photo = api.post("/api/search/image", {"q": "towel"}, format="multipart")

    assert as_json.status_code == 415 and as_json.json()["error"]["code"] == "unsupported_media_type"
    assert no_photo.status_code == 400 and no_photo.json()["error"]["field"] == "image"


def test_search_unavailable_is_503_with_retry_after():
    response = exception_handler(SearchUnavailable("index locked"), {})

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.data["error"]["code"] == "search_unavailable"
