"""Fixtures for the API tests: two merchants with staff, a shopper, a superuser, their clients."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from shop.models import Merchant, Product
from shop.state import state_cache

ROLES = ("anonymous", "shopper", "merchant_a", "merchant_b", "superuser")


@dataclass
class World:
    merchant_a: Merchant
    merchant_b: Merchant
    users: dict
    product_a: Product
    product_b: Product
    catalog_product: Product

    def client(self, role: str) -> APIClient:
        """An API client signed in as ``role`` with a fresh token (no client for ``anonymous``)."""
        client = APIClient()
        if role != "anonymous":
            token, _ = Token.objects.get_or_create(user=self.users[role])
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Throttle counters live in the ``state`` cache (shop.state): start every test with none."""
    cache.clear()
    state_cache().clear()
    yield


@pytest.fixture
def world(db) -> World:
    """Exactly these three products (rows other fixtures committed are removed inside this test's transaction)."""
    from shop.signals import indexing_deferred

    with indexing_deferred():
        Product.objects.all().delete()
    User = get_user_model()
    users = {
        "shopper": User.objects.create_user("shopper", password="pw-shopper"),
        "merchant_a": User.objects.create_user("alice", password="pw-alice"),
        "merchant_b": User.objects.create_user("bob", password="pw-bob"),
        "superuser": User.objects.create_superuser("root", password="pw-root"),
    }
    merchant_a = Merchant.objects.create(name="Acme Towels")
    merchant_b = Merchant.objects.create(name="Bolt Watches")
    merchant_a.staff.add(users["merchant_a"])
    merchant_b.staff.add(users["merchant_b"])
    product_a = Product.objects.create(merchant=merchant_a, title="Acme cotton bath towel", external_id="acme-1", price=499)
    product_b = Product.objects.create(merchant=merchant_b, title="Bolt steel wrist watch", external_id="bolt-1", price=2999)
    catalog = Product.objects.create(merchant=None, title="Imported catalog curtain", external_id="flip-1", price=799)
    return World(merchant_a, merchant_b, users, product_a, product_b, catalog)
