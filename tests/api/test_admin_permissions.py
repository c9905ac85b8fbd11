"""Admin pages for anonymous, a shopper, merchant A's staff, merchant B's staff and a superuser.

Merchant staff see and change only their merchant's products: another merchant's product is
absent from their list, and its pages redirect to the admin index ("doesn't exist"), as the
admin does for any object outside the user's queryset. A superuser sees everything.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from shop.merchant_services import merchant_staff_add
from shop.models import Merchant, Product
from tests.api.conftest import ROLES


@pytest.fixture
def admin_world(world):
    merchant_staff_add(merchant=world.merchant_a, user=world.users["merchant_a"])
    merchant_staff_add(merchant=world.merchant_b, user=world.users["merchant_b"])
    return world


def _client(world, role: str) -> Client:
    client = Client()
    if role != "anonymous":
        client.force_login(world.users[role])
    return client


def _add_form(merchant: Merchant | None, title: str) -> dict:
    return {
        "merchant": merchant.pk if merchant else "", "title": title, "description": "", "brand": "", "category": "",
        "price": "250", "list_price": "", "currency": "INR", "rating": "", "specifications": json.dumps({}),
        "external_id": "", "images-TOTAL_FORMS": 0, "images-INITIAL_FORMS": 0, "images-MIN_NUM_FORMS": 0, "images-MAX_NUM_FORMS": 1000,
    }


# page -> expected outcome for (anonymous, shopper, merchant_a, merchant_b, superuser):
# 200 the page, "login" a redirect to the login page, "index" the admin's "doesn't exist" redirect, 403.
PAGES = {
    "product list": ("/admin/shop/product/", ("login", "login", 200, 200, 200)),
    "change product A": ("/admin/shop/product/{a}/change/", ("login", "login", 200, "index", 200)),
    "delete product A": ("/admin/shop/product/{a}/delete/", ("login", "login", 200, "index", 200)),
    "change catalog product": ("/admin/shop/product/{c}/change/", ("login", "login", "index", "index", 200)),
    "add product": ("/admin/shop/product/add/", ("login", "login", 200, 200, 200)),
    "merchants": ("/admin/shop/merchant/", ("login", "login", 403, 403, 200)),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", list(PAGES))
def test_admin_page_matrix(admin_world, page, role):
    url, outcomes = PAGES[page]
    url = url.format(a=admin_world.product_a.pk, c=admin_world.catalog_product.pk)
    expected = outcomes[ROLES.index(role)]

    response = _client(admin_world, role).get(url)

    if expected == "login":
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    elif expected == "index":
        assert response.status_code == 302 and response["Location"] == "/admin/"
    else:
        assert response.status_code == expected


@pytest.mark.parametrize(("role", "visible"), [("merchant_a", {"a"}), ("merchant_b", {"b"}), ("superuser", {"a", "b", "c"})])
def test_product_list_shows_only_own_products(admin_world, role, visible):
    titles = {"a": admin_world.product_a.title, "b": admin_world.product_b.title, "c": admin_world.catalog_product.title}

    html = _client(admin_world, role).get("/admin/shop/product/").content.decode()

    assert {key for key, title in titles.items() if title in html} == visible


def test_merchant_cannot_change_another_merchants_product(admin_world):
    product = admin_world.product_a
    form = _add_form(admin_world.merchant_b, "Hijacked")

    response = _client(admin_world, "merchant_b").post(f"/admin/shop/product/{product.pk}/change/", form)

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert Product.objects.get(pk=product.pk).title == "Acme cotton bath towel"


def test_new_product_belongs_to_the_merchant_who_adds_it(admin_world):
    response = _client(admin_world, "merchant_a").post("/admin/shop/product/add/", _add_form(admin_world.merchant_a, "Acme bath robe"))

    assert response.status_code == 302
    assert Product.objects.get(title="Acme bath robe").merchant == admin_world.merchant_a


def test_merchant_cannot_add_a_product_for_another_merchant(admin_world):
    response = _client(admin_world, "merchant_a").post("/admin/shop/product/add/", _add_form(admin_world.merchant_b, "Sneaky robe"))

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Product.objects.filter(title="Sneaky robe").exists()


def test_add_form_offers_only_own_merchant(admin_world):
    html = _client(admin_world, "merchant_a").get("/admin/shop/product/add/").content.decode()

    assert admin_world.merchant_a.name in html and admin_world.merchant_b.name not in html


def test_superuser_adds_staff_to_a_merchant_in_the_admin(admin_world):
    from django.contrib.auth import get_user_model

    newcomer = get_user_model().objects.create_user("carol", password="pw")
    merchant = admin_world.merchant_a
    form = {"name": merchant.name, "slug": merchant.slug, "staff": [admin_world.users["merchant_a"].pk, newcomer.pk]}

    response = _client(admin_world, "superuser").post(f"/admin/shop/merchant/{merchant.pk}/change/", form)

    assert response.status_code == 302
    newcomer.refresh_from_db()
    assert newcomer.is_staff and newcomer.has_perm("shop.change_product") and merchant.staff.filter(pk=newcomer.pk).exists()
