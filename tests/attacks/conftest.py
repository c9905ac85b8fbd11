"""Fixtures of the attack tests: real servers and Redis (see tests/attacks/servers.py)."""

import sqlite3

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from shop.models import Merchant, Product
from shop.signals import indexing_deferred
from tests.attacks.servers import server_factory  # noqa: F401 - pytest fixtures


@pytest.fixture
def broken_products_table():
    """The product table renamed under the running server (a failed migration, a lost disk): any read of it fails."""
    path = connection.settings_dict["NAME"]
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE shop_product RENAME TO shop_product_away")
    try:
        yield
    finally:
        with sqlite3.connect(path) as db:
            db.execute("ALTER TABLE shop_product_away RENAME TO shop_product")


@pytest.fixture
def merchant(django_user_model):
    """A merchant's staff user with an API token, and one of its products: (auth headers, product)."""
    user = django_user_model.objects.create_user("acme-staff", password="pw-acme-staff")
    shop = Merchant.objects.create(name="Acme Towels")
    shop.staff.add(user)
    with indexing_deferred():
        product = Product.objects.create(merchant=shop, title="Acme cotton bath towel", external_id="acme-1", price=499)
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}, product
