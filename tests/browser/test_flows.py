"""A shopper and a merchant in a real browser (Debian's Chromium, headless) against the live server.

Real parts: a sample of the Flipkart catalog, the real encoders, SQLite, the embedded engine; tasks
run in-process, so a product saved in the admin is indexed when its transaction commits.
"""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings
from playwright.sync_api import expect

from search.clicks.models import SearchClick
from shop.merchant_services import merchant_staff_add
from shop.models import Merchant, Product

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CARD_TITLES = ".product-card .card-title a"


def test_shopper_searches_filters_pages_uploads_a_photo_and_opens_a_product(page, screenshot, shop_catalog, settings):
    # the home page
    page.goto("/")
    expect(page.locator("h1")).to_contain_text("Find it by words")
    screenshot("01-home")

    # types a query
    page.locator(".hero-search input[name=q]").fill("cotton bath towel")
    page.locator(".hero-search button[type=submit]").click()
    page.wait_for_url(re.compile(r"/search/\?q=cotton"))
    expect(page.locator(CARD_TITLES).first).to_contain_text(re.compile("towel", re.I))
    screenshot("02-search-results")

    # filters by the top category facet: every result is in it
    facet = page.locator(".facet-list a").first
    category = facet.locator("span").first.inner_text()
    facet.click()
    page.wait_for_url(re.compile(r"category="))
    expect(page.locator(".chip").first).to_contain_text(category)
    screenshot("03-filtered")

    # pages through a broad query (the sample has fewer than 24 products holding "men", so the
    # match cut-off is off here to give it a second page of weaker matches)
    settings.SEARCH_MATCH_MIN_COVERAGE = 0.0
    settings.SEARCH_EXACT_MATCH_BOOST, settings.SEARCH_EXACT_ENOUGH, settings.SEARCH_KNN_ONLY_MIN_COSINE = 0.0, 0, {}  # read coverage too
    settings.SEARCH_KNN_MIN_RATIO = {**settings.SEARCH_KNN_MIN_RATIO, "text": 0.5, "fused": 0.5}
    page.goto("/search/?q=men")
    page.locator("a.page-link[rel=next]").click()
    page.wait_for_url(re.compile(r"page=2"))
    expect(page.locator(".page-link.is-current")).to_have_text("2")
    first_of_page_two = page.locator(CARD_TITLES).first.inner_text()
    page.locator("a.page-link[rel=prev]").click()
    expect(page.locator(CARD_TITLES).first).not_to_have_text(first_of_page_two)

    # uploads a photo of a towel: that towel comes first
    towel = Product.objects.filter(pk__in=shop_catalog.product_ids, title__icontains="towel", images__isnull=False).first()
    page.goto("/")
    page.locator("#panel-photo").set_input_files(str(settings.MEDIA_ROOT / towel.primary_image.image.name))  # searches at once
    page.wait_for_url(re.compile(r"/search/"))
    expect(page.locator(".photo-chip")).to_contain_text("Searching by your photo")
    expect(page.locator(CARD_TITLES).first).to_have_text(towel.title)
    screenshot("04-photo-search")

    # clicks the result: its product page
    page.locator(CARD_TITLES).first.click()
    page.wait_for_url(re.compile(rf"/p/{towel.pk}/"))
    expect(page.locator("h1")).to_have_text(towel.title)
    screenshot("05-product-page")


def test_a_click_on_a_result_comes_back_by_beacon_and_counts(shopper_page, shop_catalog):
    # given a results page that recorded its impression
    page = shopper_page
    page.goto("/search/?q=cotton+bath+towel")
    expect(page.locator("[data-impression]")).to_have_count(1)
    first = page.locator(CARD_TITLES).first
    product_id = int(re.search(r"/p/(\d+)/", first.get_attribute("href")).group(1))

    # when the shopper clicks the first result
    first.click()
    page.wait_for_url(re.compile(rf"/p/{product_id}/"))

    # then clicks.js's beacon (text/plain, no CSRF token) reached POST /events/click and counted
    deadline = time.monotonic() + 15
    while not SearchClick.objects.filter(product_id=product_id).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    click = SearchClick.objects.get(product_id=product_id)
    assert click.counted and click.position == 1


#: A real bath mat photo from the Flipkart catalog (read from CATALOG_DIR, never copied).
MAT_PHOTO = "flipkart/images/81e739c7f3be737152f2e6f520e3494b.jpg"


def test_merchant_adds_a_product_with_a_photo_and_finds_it_in_search(page, screenshot, django_user_model):
    # given a merchant's staff member
    merchant = Merchant.objects.create(name="Jute Works")
    user = django_user_model.objects.create_user("juteworks", password="correct horse battery")
    merchant_staff_add(merchant=merchant, user=user)

    # logs in to the admin
    page.goto("/admin/")
    page.locator("#id_username").fill("juteworks")
    page.locator("#id_password").fill("correct horse battery")
    page.locator("input[type=submit]").click()
    expect(page.locator("#site-name")).to_be_visible()

    # adds a product with a photo
    page.goto("/admin/shop/product/add/")
    expect(page.locator("#id_merchant")).to_have_value(str(merchant.pk))
    page.locator("#id_title").fill("Aurora handwoven jute bath mat")
    page.locator("#id_description").fill("Natural jute fibre bath mat, 60 x 40 cm, anti-slip backing.")
    page.locator("#id_price").fill("649")
    page.locator("input[name='images-0-image']").set_input_files(str(settings.CATALOG_DIR / MAT_PHOTO))
    screenshot("06-admin-add-product")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    # the product was indexed when it was saved, and belongs to the merchant
    product = Product.objects.get(title="Aurora handwoven jute bath mat")
    assert (product.merchant, product.index_state, product.images.count()) == (merchant, "indexed", 1)
    expect(page.locator(".index-badge").first).to_have_text("Indexed")
    screenshot("07-admin-product-list")

    # a shopper finds it
    page.goto("/search/?q=jute+bath+mat")
    expect(page.locator(CARD_TITLES).first).to_have_text("Aurora handwoven jute bath mat")
    screenshot("08-merchant-product-in-search")
