"""API tokens rotate and are revoked, and analytics are scoped to what each staff member may see (issue 11, point 9).

Before: the old API token kept working after a password change, logging in again returned the
same key, and the staff of any merchant read the store-wide ``/staff/analytics/``. Here real
users, real tokens and real sessions go over HTTP to a real gunicorn process with the
production settings on loopback. Sessions are made with the server's ``SECRET_KEY``, as its
login would make them, and sent as a header (the production cookies are HTTPS-only). The admin's
password form is used on the demo settings (DEBUG off, static files served without ``collectstatic``).
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from search.clicks.models import ClickStat, SearchImpression
from shop.models import Merchant, Product
from tests.attacks.servers import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(kind="gunicorn")


@pytest.fixture(scope="module")
def demo_server(server_factory):
    """The admin's pages need static files: the demo settings serve them without ``collectstatic`` (DEBUG off too)."""
    return server_factory(kind="gunicorn", settings="config.settings.demo")


@pytest.fixture(autouse=True)
def _server_hashers(settings):
    """Passwords hashed as the server verifies them (the test settings' fast hasher is not in its list)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


@pytest.fixture
def shop(django_user_model):
    """Two merchants with a product each, their staff, a staff member of no merchant, and a superuser."""
    users = {
        "alice": django_user_model.objects.create_user("alice", password="pw-alice-1", is_staff=True),
        "bob": django_user_model.objects.create_user("bob", password="pw-bob-1", is_staff=True),
        "carol": django_user_model.objects.create_user("carol", password="pw-carol-1", is_staff=True),
        "root": django_user_model.objects.create_superuser("root", password="pw-root-1"),
    }
    acme, globex = Merchant.objects.create(name="Acme"), Merchant.objects.create(name="Globex")
    acme.staff.add(users["alice"])
    globex.staff.add(users["bob"])
    products = Product.objects.bulk_create([
        Product(title="Acme waffle towel", merchant=acme), Product(title="Globex silk scarf", merchant=globex),
    ])
    return users, products


def token_for(server, username: str, password: str) -> str:
    response = server.post("/api/auth/token/", json={"username": username, "password": password})
    assert response.status_code == 200, response.text[:500]
    return response.json()["token"]


def can_use(server, token: str, product: Product) -> bool:
    """Whether ``token`` still authenticates: reads its owner's product's indexing state (owner-only)."""
    response = server.get(f"/api/products/{product.pk}/index-state/", headers={"Authorization": f"Token {token}"})
    assert response.status_code in (200, 401), response.text[:500]
    return response.status_code == 200


def test_each_login_issues_a_new_token_and_revokes_the_last(server, shop):
    _, (towel, _) = shop
    first = token_for(server, "alice", "pw-alice-1")
    second = token_for(server, "alice", "pw-alice-1")
    assert first != second
    assert not can_use(server, first, towel)
    assert can_use(server, second, towel)


def test_rotating_on_demand_and_revoking(server, shop):
    _, (towel, _) = shop
    old = token_for(server, "alice", "pw-alice-1")
    rotated = server.post("/api/auth/token/rotate/", headers={"Authorization": f"Token {old}"})
    assert rotated.status_code == 200, rotated.text[:500]
    new = rotated.json()["token"]
    assert new != old and rotated.json()["expires_at"]
    assert not can_use(server, old, towel) and can_use(server, new, towel)
    assert server.post("/api/auth/token/rotate/", headers={"Authorization": f"Token {old}"}).status_code == 401

    revoked = server.request("DELETE", "/api/auth/token/", headers={"Authorization": f"Token {new}"})
    assert revoked.status_code == 204
    assert not can_use(server, new, towel)


def test_a_password_changed_in_code_revokes_the_token(server, shop):
    users, (towel, _) = shop
    token = token_for(server, "alice", "pw-alice-1")
    assert can_use(server, token, towel)
    alice = users["alice"]
    alice.set_password("pw-alice-2")  # what manage.py changepassword and the password views do
    alice.save()
    assert not can_use(server, token, towel)
    assert can_use(server, token_for(server, "alice", "pw-alice-2"), towel)


def test_a_password_changed_in_the_admin_revokes_the_token(demo_server, shop):
    server = demo_server
    users, (towel, _) = shop
    token = token_for(server, "alice", "pw-alice-1")
    admin = session_cookie(server, users["root"])
    form_url = f"/admin/auth/user/{users['alice'].pk}/password/"
    form = server.get(form_url, headers=admin)
    assert form.status_code == 200, form.text[:500]
    csrf = form.cookies.get("csrftoken")
    middleware_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    changed = server.post(
        form_url, headers={"Cookie": f"{admin['Cookie']}; csrftoken={csrf}", "Referer": server.url + form_url},
        data={"csrfmiddlewaretoken": middleware_token, "password1": "Pw-alice-Admin-7", "password2": "Pw-alice-Admin-7",
              "usable_password": "true"},
    )
    assert changed.status_code == 302, changed.text[:2000]
    assert not can_use(server, token, towel)
    assert can_use(server, token_for(server, "alice", "Pw-alice-Admin-7"), towel)


@pytest.fixture
def searches(shop):
    """Searches that showed each merchant's product, and a click prior above neutral for each."""
    _, (towel, scarf) = shop
    now = timezone.now()
    SearchImpression.objects.bulk_create(
        [SearchImpression(query="waffle towel", product_ids=[towel.pk], total=1, session_hash=f"{i:064x}", created=now) for i in range(3)]
        + [SearchImpression(query="silk scarf", product_ids=[scarf.pk], total=1, session_hash=f"{i:064x}", created=now) for i in range(3)]
        + [SearchImpression(query="unobtainium", product_ids=[], total=0, session_hash="f" * 64, created=now)]
    )
    ClickStat.objects.bulk_create([ClickStat(query="", product=towel, prior=0.7), ClickStat(query="", product=scarf, prior=0.8)])


def test_analytics_are_store_wide_for_a_superuser_and_own_products_for_merchant_staff(server, shop, searches):
    users, _ = shop
    store = server.get("/staff/analytics/", headers=session_cookie(server, users["root"]))
    assert store.status_code == 200
    for text in ("waffle towel", "silk scarf", "Acme waffle towel", "Globex silk scarf", "unobtainium", "Zero-result queries"):
        assert text in store.text, text

    for user, own, other in (("alice", "waffle towel", "silk scarf"), ("bob", "silk scarf", "waffle towel")):
        page = server.get("/staff/analytics/", headers=session_cookie(server, users[user]))
        assert page.status_code == 200, page.text[:500]
        assert own in page.text and other not in page.text, user
        assert "unobtainium" not in page.text and "Zero-result queries" not in page.text and "Discarded events" not in page.text
        assert "3 searches" in page.text

    refused = server.get("/staff/analytics/", headers=session_cookie(server, users["carol"]))
    assert refused.status_code == 403
    assert "silk scarf" not in refused.text and "waffle towel" not in refused.text
