"""Storefront details a shopper sees: the query photo's preview on the results page, the search box
that keeps the photo, the query time for staff only, and plain words where the shop is empty.

Real parts: the Flipkart sample (``indexed_catalog``), the real encoders, SQLite, the file cache.
"""

from __future__ import annotations

import io
from html import unescape
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

from shop.models import Product
from shop.query_photos import PREVIEW_PX
from tests.test_storefront import catalog_photo, upload

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def photo_results(client, indexed_catalog):
    """(product, token, results URL) of a photo search with one of the sample's photos."""
    product = Product.objects.filter(pk__in=indexed_catalog.product_ids, title__icontains="towel").order_by("pk").first()
    location = upload(client, catalog_photo(product))["Location"]
    return product, parse_qs(urlparse(location).query)["img"][0], location


def test_the_query_photo_preview_is_a_small_jpeg_under_its_token(client, photo_results):
    # given
    _, token, _ = photo_results
    # when
    response = client.get(f"/search/photo/{token}.jpg")
    # then
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"].startswith("private")
    with Image.open(io.BytesIO(response.content)) as preview:
        assert preview.format == "JPEG" and max(preview.size) == PREVIEW_PX


@pytest.mark.parametrize("token", ["A" * 22, "not-a-token", "x" * 200])
def test_an_unknown_or_malformed_preview_token_is_404(client, token):
    assert client.get(f"/search/photo/{token}.jpg").status_code == 404


def test_photo_results_show_the_preview_and_ways_to_remove_the_photo_or_add_words(client, photo_results):
    # given
    _, token, location = photo_results
    # when
    html = unescape(client.get(location).content.decode())
    # then: the chip shows the photo; the header search box carries the photo token
    assert f'<img class="photo-chip-thumb" src="/search/photo/{token}.jpg" alt="Your photo"' in html
    assert f'<input type="hidden" name="img" value="{token}">' in html
    assert 'placeholder="Add words to your photo, e.g. red"' in html
    assert 'class="chip-action chip-remove">Remove photo</a>' in html and 'href="/" class="chip-action chip-remove"' in html


def test_with_words_the_chip_removes_either_the_photo_or_the_words(client, photo_results):
    # given
    _, token, _ = photo_results
    # when
    html = unescape(client.get("/search/", {"img": token, "q": "blue"}).content.decode())
    # then
    assert "Searching by your photo and “blue”" in html
    assert '<a href="/search/?q=blue" class="chip-action chip-remove">Remove photo</a>' in html
    assert f'<a href="/search/?img={token}" class="chip-action">Remove words</a>' in html


def test_the_query_time_is_for_staff_only(client, admin_client, indexed_catalog):
    # when
    shopper = client.get("/search/", {"q": "cotton bath towel"}).content.decode()
    staff = admin_client.get("/search/", {"q": "cotton bath towel"}).content.decode()
    # then
    assert " ms)" not in shopper and "search-time" not in shopper
    assert 'class="muted search-time"' in staff


def test_an_empty_shop_tells_shoppers_to_come_back_and_staff_how_to_fill_it(client, admin_client):
    # given: no products
    Product.objects.all().delete()
    # when
    shopper = unescape(client.get("/").content.decode())
    staff = unescape(admin_client.get("/").content.decode())
    # then
    assert "The shop is getting ready. Please come back soon." in shopper and "import_catalog" not in shopper
    assert "manage.py import_catalog flipkart" in staff


def test_the_photo_panel_and_the_header_share_one_picker(client, indexed_catalog):
    # when
    html = client.get("/").content.decode()
    # then: both file inputs are visually hidden, labelled by a button-like label, and searched on choice
    assert '<input type="file" id="header-photo" name="image" accept="image/*" form="header-photo-form" class="visually-hidden file-input"' in html
    assert '<label for="header-photo" class="searchbar-camera"' in html
    assert '<input type="file" id="panel-photo" name="image" accept="image/*" required class="visually-hidden file-input"' in html
    assert '<label for="panel-photo" class="btn btn-primary dropzone-button">Choose a photo</label>' in html
    assert html.count("data-photo-picker") == 2


def test_a_form_refused_by_the_csrf_check_gets_the_shops_page_in_plain_words(db):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)

    response = browser.post("/search/photo/", {"q": "towel"})

    assert response.status_code == 403
    page = unescape(response.content.decode())
    assert "This form has expired" in page and "Reload the page and send the form again." in page
    assert "CSRF verification failed" not in page
