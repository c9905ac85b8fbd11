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
