"""Who may do what through the API: every endpoint for anonymous, a shopper, the staff of
merchant A, the staff of merchant B and a superuser. The product under test belongs to A.

Another merchant's product answers 403 (products are public, so their existence is no secret);
an unknown id answers 404; no credentials answer 401.
"""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from shop.models import Product, ProductImage
from tests.api.conftest import ROLES
from tests.api.images import photo_bytes


def _image_of(product: Product) -> ProductImage:
    image = ProductImage(product=product, is_primary=True)
    image.image.save("x.jpg", ContentFile(photo_bytes()), save=False)
    image.save()
    return image


def _csv(external_id: str) -> bytes:
    return f"external_id,title,price\n{external_id},Matrix towel,10\n".encode()


# endpoint name -> expected status for (anonymous, shopper, merchant_a, merchant_b, superuser)
MATRIX = {
    "list products": (200, 200, 200, 200, 200),
    "retrieve product": (200, 200, 200, 200, 200),
    "list photos": (200, 200, 200, 200, 200),
    "create product": (401, 403, 201, 201, 201),
    "replace product": (401, 403, 200, 403, 200),
    "change product": (401, 403, 200, 403, 200),
    "delete product": (401, 403, 204, 403, 204),
    "index state": (401, 403, 200, 403, 200),
    "add photo": (401, 403, 201, 403, 201),
    "delete photo": (401, 403, 204, 403, 204),
    "bulk upload": (401, 403, 200, 200, 200),
    "change catalog product": (401, 403, 403, 403, 200),
    "change unknown product": (401, 403, 404, 404, 404),
}


def _call(name: str, client, world, role: str):
    pa = world.product_a
    if name == "list products":
        return client.get("/api/products/")
    if name == "retrieve product":
        return client.get(f"/api/products/{pa.pk}/")
    if name == "list photos":
        return client.get(f"/api/products/{pa.pk}/images/")
    if name == "create product":
        return client.post("/api/products/", {"title": "New towel", "price": "120.50"}, format="json")
    if name == "replace product":
        return client.put(f"/api/products/{pa.pk}/", {"title": "Renamed towel", "price": "450"}, format="json")
    if name == "change product":
        return client.patch(f"/api/products/{pa.pk}/", {"price": "450"}, format="json")
    if name == "delete product":
        return client.delete(f"/api/products/{pa.pk}/")
    if name == "index state":
        return client.get(f"/api/products/{pa.pk}/index-state/")
    if name == "add photo":
        return client.post(f"/api/products/{pa.pk}/images/", {"image": ContentFile(photo_bytes(), name="p.jpg")}, format="multipart")
    if name == "delete photo":
        image = _image_of(pa)
        return client.delete(f"/api/products/{pa.pk}/images/{image.pk}/")
    if name == "bulk upload":
        return client.post("/api/products/bulk/", {"csv": ContentFile(_csv(f"bulk-{role}"), name="p.csv")}, format="multipart")
    if name == "change catalog product":
        return client.patch(f"/api/products/{world.catalog_product.pk}/", {"price": "1"}, format="json")
    if name == "change unknown product":
        return client.patch("/api/products/999999/", {"price": "1"}, format="json")
    raise AssertionError(name)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", list(MATRIX))
def test_permission_matrix(world, endpoint, role):
    # given a product of merchant A, and a client signed in as ``role``
    before = {p.pk: (p.title, p.price) for p in Product.objects.all()}
    expected = MATRIX[endpoint][ROLES.index(role)]

    # when
    response = _call(endpoint, world.client(role), world, role)

    # then the status is the expected one, and a refusal explains itself and changes nothing
    assert response.status_code == expected, response.content
    if expected >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"]
        if endpoint != "delete photo":
            assert {p.pk: (p.title, p.price) for p in Product.objects.all()} == before
    if expected == 401:
        assert response["WWW-Authenticate"] == "Token"


def test_new_product_belongs_to_the_creators_merchant(world):
    response = world.client("merchant_b").post("/api/products/", {"title": "Bolt diver watch", "price": "3999"}, format="json")

    assert response.status_code == 201
    assert response.json()["merchant"] == world.merchant_b.slug
    assert Product.objects.get(pk=response.json()["id"]).merchant == world.merchant_b


def test_staff_cannot_create_for_another_merchant(world):
    response = world.client("merchant_a").post(
        "/api/products/", {"title": "Sneaky", "merchant": world.merchant_b.slug}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "merchant"
    assert not Product.objects.filter(title="Sneaky").exists()


def test_staff_cannot_move_own_product_to_another_merchant(world):
    response = world.client("merchant_a").patch(
        f"/api/products/{world.product_a.pk}/", {"merchant": world.merchant_b.slug}, format="json"
    )

    assert response.status_code == 400
    world.product_a.refresh_from_db()
    assert world.product_a.merchant == world.merchant_a


def test_another_merchants_product_answers_403_with_a_reason(world):
    response = world.client("merchant_b").patch(f"/api/products/{world.product_a.pk}/", {"title": "Hijacked"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "permission_denied",
        "message": f"Product {world.product_a.pk} belongs to another merchant; you can change only your own merchant's products.",
        "field": "",
    }


def test_mine_lists_only_own_products(world):
    response = world.client("merchant_a").get("/api/products/?mine=true")

    assert response.status_code == 200
    assert [p["id"] for p in response.json()["results"]] == [world.product_a.pk]


def test_staff_of_two_merchants_must_say_which(world):
    world.merchant_b.staff.add(world.users["merchant_a"])

    response = world.client("merchant_a").post("/api/products/", {"title": "Which one"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "merchant"
    assert world.merchant_a.slug in error["message"] and world.merchant_b.slug in error["message"]


def test_another_merchants_indexing_state_is_refused_in_words_about_reading(world):
    response = world.client("merchant_b").get(f"/api/products/{world.product_a.pk}/index-state/")

    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        f"Product {world.product_a.pk} belongs to another merchant; only that merchant's staff can see its indexing state."
    )
