"""The OpenAPI schema and its docs pages, which must work with no network (assets from drf-spectacular-sidecar)."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_schema_lists_every_endpoint_and_the_error_body(client):
    schema = client.get("/api/schema/?format=json").json()

    assert schema["openapi"].startswith("3.")
    assert {"/api/search", "/api/search/image", "/api/products/", "/api/products/{id}/", "/api/products/{id}/images/",
            "/api/products/{id}/images/{image_id}/", "/api/products/{id}/index-state/", "/api/products/bulk/",
            "/api/auth/token/"} <= set(schema["paths"])
    assert set(schema["components"]["schemas"]["ErrorDetail"]["properties"]) >= {"code", "message", "field"}
    assert "400" in schema["paths"]["/api/search"]["get"]["responses"]


def test_docs_page_loads_its_assets_locally(client):
    asset = "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"

    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert asset in html
    assert not re.search(r"""(src|href)=["']https?://""", html), "the page must not load anything from the internet"
    assert finders.find(asset) is not None


def test_schema_documents_paging_a_photo_search_by_its_token(client):
    schema = client.get("/api/schema/?format=json").json()

    page_by_token = schema["paths"]["/api/search/image"]["get"]
    upload = schema["paths"]["/api/search/image"]["post"]
    photo = next(p for p in page_by_token["parameters"] if p["name"] == "photo")
    assert photo["required"] and photo["in"] == "query"
    assert {"200", "400", "410"} <= set(page_by_token["responses"])
    body = upload["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "photo" in schema["components"]["schemas"][body]["properties"]


def test_schema_documents_the_click_event_endpoints(client):
    schema = client.get("/api/schema/?format=json").json()

    beacon = schema["paths"]["/events/click"]["post"]
    redirect = schema["paths"]["/events/click/{token}/{product_id}/"]["get"]
    assert set(beacon["requestBody"]["content"]) == {"application/json", "text/plain"}
    assert {"204", "400", "403", "404", "409", "410", "413", "429"} <= set(beacon["responses"])
    assert {"302", "404"} <= set(redirect["responses"])
    assert beacon["tags"] == redirect["tags"] == ["events"]
    components = schema["components"]["schemas"]
    refused = components["ClickRefused"]["properties"]
    reason = refused["reason"]
    reasons = components[reason["allOf"][0]["$ref"].rsplit("/", 1)[-1]] if "allOf" in reason else reason
    assert set(refused) == {"counted", "reason"} and "duplicate" in reasons["enum"]


def test_adding_the_events_keeps_the_api_operation_ids_and_tags(client):
    schema = client.get("/api/schema/?format=json").json()

    products = schema["paths"]["/api/products/"]["get"]
    assert (products["operationId"], products["tags"]) == ("products_list", ["products"])
    assert schema["paths"]["/api/auth/token/"]["post"]["operationId"] == "auth_token_create"
