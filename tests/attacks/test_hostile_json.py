"""Hostile request bodies get the API's JSON error body, never a 500 or an HTML page (issue 11, point 2).

5,000 levels of nested JSON on ``POST``/``PUT /api/products/`` and, anonymously, on
``POST /events/click`` answered 500 ``RecursionError`` with an HTML page. Here a real gunicorn
process with the production settings (DEBUG off) gets deep, large and endless bodies, and a
database failure forces real 500s; every answer under /api/ and /events/ is JSON with the
documented shape, and no traceback or local path reaches the client.
"""

from __future__ import annotations

import json

import pytest

from shop.models import Product
from tests.attacks.servers import REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)

DEPTH_LIMIT = 32


def nested(depth: int) -> bytes:
    """``depth`` levels of arrays around a product field, as an attacker would send it."""
    return ("[" * depth + '"x"' + "]" * depth).encode()


def assert_error_body(response, status: int, code: str | None = None) -> dict:
    """The documented error body: JSON, ``{"error": {"code", "message", "field"}}``, no traceback or path."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:500]
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "field"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    assert "Traceback" not in response.text and str(REPO_ROOT) not in response.text and "site-packages" not in response.text
    return error


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(kind="gunicorn")


@pytest.fixture
def merchant(merchant):
    """The attacks' merchant (conftest), its headers sending JSON."""
    auth, product = merchant
    return {**auth, "Content-Type": "application/json"}, product


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_5000_levels_of_nested_json_on_products_answer_400(server, merchant, method):
    headers, product = merchant
    path = "/api/products/" if method == "POST" else f"/api/products/{product.pk}/"
    # when
    response = server.request(method, path, headers=headers, data=b'{"title": ' + nested(5000) + b"}")
    # then
    error = assert_error_body(response, 400, "parse_error")
    assert error["message"] == f"The JSON nests 5001 levels deep; at most {DEPTH_LIMIT} are accepted."
    assert Product.objects.get(pk=product.pk).title == "Acme cotton bath towel"


def test_json_at_the_depth_limit_is_parsed_and_validated(server, merchant):
    headers, _ = merchant
    # when: 32 levels in all, parsed; the title is not a string, so validation says so
    response = server.post("/api/products/", headers=headers, data=b'{"title": ' + nested(DEPTH_LIMIT - 1) + b', "price": 10}')
    # then
    error = assert_error_body(response, 400)
    assert error["field"] == "title" and error["code"] != "parse_error"


@pytest.mark.parametrize(("megabytes", "shown"), [(1.5, "1.5 MB"), (3, "3 MB")])
def test_a_json_body_over_the_size_limit_answers_413(server, merchant, megabytes, shown):
    headers, _ = merchant
    body = json.dumps({"title": "Towel", "price": 10, "description": "x" * int(megabytes * 1024 * 1024 - 50)}).encode()
    assert len(body) == megabytes * 1024 * 1024
    # when
    response = server.post("/api/products/", headers=headers, data=body)
    # then
    assert assert_error_body(response, 413, "too_large")["message"] == f"The request body is {shown}; a JSON body may be at most 1 MB."
    assert not Product.objects.filter(title="Towel").exists()


def test_nested_json_on_the_click_beacon_is_refused_anonymously_without_a_500(server):
    # when: as deep as fits in the beacon's 2 KB, and 5,000 levels (over the size limit)
    deep = server.post("/events/click", data=b'{"impression_id": "x", "product_id": ' + nested(1000) + b"}", headers={"Content-Type": "text/plain"})
    huge = server.post("/events/click", data=nested(5000), headers={"Content-Type": "text/plain"})
    # then
    assert (deep.status_code, deep.json()) == (400, {"counted": False, "reason": "malformed"})
    assert (huge.status_code, huge.json()) == (413, {"counted": False, "reason": "too_large"})


def test_more_than_a_thousand_parameters_answer_400_with_the_error_body(server):
    query = "&".join(["p"] * 1200)  # short names: gunicorn refuses request lines over 4,094 bytes itself
    # when
    response = server.get(f"/api/search?q=towel&{query}")
    # then
    error = assert_error_body(response, 400, "bad_request")
    assert error["message"] == "The request has more than 1,000 parameters; send fewer."


def test_unknown_paths_under_events_answer_json_404(server):
    assert_error_body(server.get("/events/no-such-event"), 404, "not_found")


def test_a_server_error_answers_500_with_the_error_body_and_logs_the_traceback(server, merchant, broken_products_table):
    headers, product = merchant
    # when: a DRF view, a DRF view writing, and the click redirect each hit the missing table
    responses = [
        server.get("/api/products/"),
        server.request("PATCH", f"/api/products/{product.pk}/", headers=headers, data=b'{"price": 1}'),
        server.get(f"/events/click/token/{product.pk}/"),
    ]
    # then
    for response in responses:
        error = assert_error_body(response, 500, "server_error")
        assert "shop_product" not in error["message"]
    assert "no such table: shop_product" in server.log_tail(20000) and "Traceback" in server.log_tail(20000)
