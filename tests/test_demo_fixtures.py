"""The hand-made demo fixtures (fixtures/demo.json): idempotent loading, working logins, merchant scoping.

Real parts: SQLite, Django's loaddata, the password hashes stored in the fixture (PBKDF2, so the
test lists that hasher beside the suite's fast MD5 one), the REST API and the admin; the
``load_demo`` test also runs the real encoders and the embedded engine in its own folder.
"""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from search.backends import get_backend, reset_backends
from shop.management.commands.load_demo import DEMO_LOGINS, fixture_product_ids
from shop.models import Brand, Category, IndexState, Merchant, Product
from shop.signals import indexing_deferred
from tests.factories import ProductFactory

pytestmark = [pytest.mark.django_db]

PAPERLEAF = ["demo-paperleaf-1", "demo-paperleaf-2", "demo-paperleaf-3"]


@pytest.fixture(autouse=True)
def pbkdf2(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]


def counts() -> tuple[int, ...]:
    return (get_user_model().objects.count(), Merchant.objects.count(), Brand.objects.count(),
            Category.objects.count(), Product.objects.count())


def test_the_demo_fixture_loads_twice_without_copies_and_names_its_rows_by_natural_keys():
    # given a catalog product already there
    with indexing_deferred():
        ProductFactory(external_id="flip-curtain", title="Imported catalog curtain", merchant=None)
    # when
    call_command("loaddata", "demo", verbosity=0)
    first = counts()
    call_command("loaddata", "demo", verbosity=0)
    # then
    assert counts() == first
    assert sorted(Product.objects.filter(merchant__name="Paperleaf Stationers").values_list("external_id", flat=True)) == PAPERLEAF
    assert Product.objects.filter(external_id="flip-curtain", merchant=None).exists()
    assert Category.objects.get(path="Stationery > Pens").parent.path == "Stationery"
    assert fixture_product_ids() == [*PAPERLEAF, "demo-inkwell-1"]


def test_the_demo_merchant_signs_in_and_sees_only_its_products():
    # given the demo fixture and a product of the imported catalog
    call_command("loaddata", "demo", verbosity=0)
    with indexing_deferred():
        ProductFactory(external_id="flip-curtain", title="Imported catalog curtain", merchant=None)
    username, password, _ = DEMO_LOGINS[1]
    # when the merchant asks the API for a token with the documented password
    api = APIClient()
    response = api.post("/api/auth/token/", {"username": username, "password": password}, format="json")
    # then it gets one, and its own products are exactly Paperleaf's
    assert response.status_code == 200, response.content
    api.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    mine = api.get("/api/products/", {"mine": "true", "page_size": 100}).json()
    assert sorted(r["external_id"] for r in mine["results"]) == PAPERLEAF
    # and in the admin it lists only those
    web = APIClient()
    assert web.login(username=username, password=password)
    page = web.get("/admin/shop/product/").content.decode()
    assert "Paperleaf A5 dotted notebook" in page and "Paperleaf linen hardcover journal" in page
    assert "Inkwell fountain pen" not in page and "Imported catalog curtain" not in page


def test_the_demo_admin_signs_in_and_sees_every_product():
    call_command("loaddata", "demo", verbosity=0)
    username, password, _ = DEMO_LOGINS[0]
    web = APIClient()
    assert web.login(username=username, password=password)
    page = web.get("/admin/shop/product/", {"q": "Inkwell"}).content.decode()
    assert "Inkwell fountain pen" in page
    assert web.get("/admin/shop/product/", {"q": "Paperleaf"}).content.decode().count("Paperleaf A5 dotted notebook") >= 1


@pytest.mark.slow
def test_load_demo_indexes_the_demo_products_and_prints_ready_logins(settings, tmp_path, django_capture_on_commit_callbacks):
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": tmp_path / "index"}}
    reset_backends()
    try:
        # when it runs twice (make demo on a machine that already ran it)
        for _ in range(2):
            out = io.StringIO()
            with django_capture_on_commit_callbacks(execute=True):  # the indexing enqueued at the commit
                call_command("load_demo", "--base-url", "http://localhost:8123", stdout=out)
            # then the logins are printed, checked, with the merchant's product count
            text = out.getvalue()
            assert "merchant / paperleaf-demo  -  staff of Paperleaf Stationers: its products only (3 products)" in text
            assert "admin / bazaar-admin-demo  -  superuser" in text
            assert "http://localhost:8123/admin/" in text
        # and the demo products are indexed and found
        ids = Product.objects.filter(external_id__in=fixture_product_ids()).values_list("pk", flat=True)
        assert set(Product.objects.filter(pk__in=ids).values_list("index_state", flat=True)) == {IndexState.INDEXED}
        backend = get_backend()
        backend.refresh()
        pen = Product.objects.get(external_id="demo-inkwell-1")
        assert [h.id for h in backend.search_text("fountain pen")][:1] == [pen.pk]
    finally:
        reset_backends()
