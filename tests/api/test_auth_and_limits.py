"""Tokens that expire, CSRF on session writes, and the rate limits on search and photo search."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from shop.models import Product


def test_token_from_username_and_password_works(world):
    client = APIClient()

    response = client.post("/api/auth/token/", {"username": "alice", "password": "pw-alice"}, format="json")

    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get(f"/api/products/{world.product_a.pk}/index-state/").status_code == 200


def test_wrong_password_is_400_with_a_reason(world):
    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "guess"}, format="json")

    assert response.status_code == 400
    assert "Unable to log in" in response.json()["error"]["message"]


def test_expired_token_is_401_with_the_reason_and_writes_nothing(world, settings):
    settings.API_TOKEN_TTL_HOURS = 24
    token = Token.objects.create(user=world.users["merchant_a"])
    Token.objects.filter(pk=token.pk).update(created=token.created - timedelta(hours=25))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    response = client.patch(f"/api/products/{world.product_a.pk}/", {"title": "Too late"}, format="json")

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "token_expired" and "expired at" in error["message"] and "/api/auth/token/" in error["message"]
    assert Product.objects.get(pk=world.product_a.pk).title == "Acme cotton bath towel"


def test_an_expired_token_is_replaced_on_the_next_login(world, settings):
    settings.API_TOKEN_TTL_HOURS = 1
    old = Token.objects.create(user=world.users["merchant_a"])
    Token.objects.filter(pk=old.pk).update(created=old.created - timedelta(hours=2))

    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "pw-alice"}, format="json")

    assert response.status_code == 200 and response.json()["token"] != old.key


def test_unknown_token_is_401(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    response = client.get("/api/products/")

    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


def test_revoking_a_token(world):
    client = world.client("merchant_a")

    assert client.delete("/api/auth/token/").status_code == 204
    assert client.get("/api/products/").status_code == 401


def test_session_writes_need_the_csrf_token(world):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.users["merchant_a"])

    response = client.patch(f"/api/products/{world.product_a.pk}/", {"title": "Forged"}, format="json")

    assert response.status_code == 403 and "CSRF" in response.json()["error"]["message"]
    assert Product.objects.get(pk=world.product_a.pk).title == "Acme cotton bath towel"


@pytest.fixture
def tight_limits(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "search_anon": "3/minute", "search_photo_anon": "2/minute"},
    }


def _photo_query(client):
    # An unusable photo still counts against the limit, and costs no encoder time in this test.
    return client.post("/api/search/image", {"image": ContentFile(b"not a photo", name="x.jpg")}, format="multipart")


def test_anonymous_photo_search_is_limited_harder_than_text_search(db, tight_limits):
    client = APIClient()

    photo = [_photo_query(client).status_code for _ in range(3)]
    text = [client.get("/api/search", {"q": "x", "sort": "bogus"}).status_code for _ in range(4)]

    assert photo == [400, 400, 429]
    assert text == [400, 400, 400, 429]
    limited = _photo_query(client)
    assert limited.json()["error"]["code"] == "throttled" and int(limited["Retry-After"]) > 0
    wait = int(limited["Retry-After"])
    assert limited.json()["error"]["message"] == (
        f"Too many requests from you in a short time; try again in {wait} second{'s' if wait != 1 else ''}."
    )


def test_paging_a_photo_search_by_token_counts_as_a_text_search(db, tight_limits):
    client = APIClient()
    uploads = [_photo_query(client).status_code for _ in range(3)]

    # the photo limit is used up, yet pages by token (no image encoding) go on, under the text limit
    pages = [client.get("/api/search/image", {"photo": "A" * 22}).status_code for _ in range(4)]

    assert uploads == [400, 400, 429]
    assert pages == [410, 410, 410, 429]


def test_signed_in_users_are_not_held_to_the_anonymous_photo_limit(world, tight_limits):
    client = world.client("shopper")

    assert [_photo_query(client).status_code for _ in range(3)] == [400, 400, 400]


def test_a_request_for_a_host_the_shop_does_not_serve_is_refused_in_plain_words(db, client, settings):
    settings.ALLOWED_HOSTS = ["shop.example.com"]

    response = client.get("/api/products/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "This server does not answer for the host name the request was sent to; use the shop's own address."
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "message"),
    [
        ("post", "/api/search/image", '{"q": "towel"}', "application/json", 415,
         "This endpoint takes multipart/form-data (a form carrying the file), not application/json; e.g. curl -F 'name=@file'."),
        ("post", "/api/auth/token/", "user=x", "text/plain", 415,
         "This endpoint takes application/json or application/x-www-form-urlencoded, not text/plain."),
        ("post", "/api/search/image", "abc", "multipart/form-data", 400,
         "The multipart body could not be read (its boundary is missing or does not match the Content-Type header); "
         "let your HTTP client build the multipart body, e.g. curl -F 'name=@file'."),
        ("post", "/api/search", "", "application/json", 405, "This address does not take POST; use GET."),
        ("get", "/api/products/99999999/", None, None, 404, "There is no product with that id."),
    ],
)
def test_requests_of_the_wrong_shape_are_told_what_to_send(db, method, path, body, content_type, status, message):
    client = APIClient()
    kwargs = {"data": body, "content_type": content_type} if body is not None else {}

    response = getattr(client, method)(path, **kwargs)

    assert response.status_code == status
    assert response.json()["error"]["message"] == message
