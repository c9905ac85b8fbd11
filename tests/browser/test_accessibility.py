"""Accessibility: the storefront pages pass axe-core's audit (WCAG 2.x A and AA, best practices).

axe-core comes from npm (``make test-tools``) and is injected by Playwright into Debian's
Chromium; the pages are served by the live server over a real sample of the Flipkart catalog,
indexed with the real encoders. Any violation fails the test with its rule, impact and elements.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from shop.models import Product

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_storefront_pages_pass_the_accessibility_audit(page, screenshot, axe_audit, shop_catalog):
    towel = Product.objects.filter(pk__in=shop_catalog.product_ids, title__icontains="towel").first()
    pages = {}

    # home
    page.goto("/")
    pages["home"] = axe_audit(page, "home")

    # results for words
    page.goto("/search/?q=cotton+bath+towel")
    expect(page.locator(".product-card").first).to_be_visible()
    pages["results"] = axe_audit(page, "results")

    # photo results (the panel submits as soon as the photo is chosen)
    page.goto("/")
    page.locator("#panel-photo").set_input_files(str(settings.MEDIA_ROOT / towel.primary_image.image.name))
    page.wait_for_url(re.compile(r"/search/\?img="))
    expect(page.locator(".photo-chip")).to_be_visible()
    pages["photo results"] = axe_audit(page, "photo-results")

    # product page
    page.goto(f"/p/{towel.pk}/")
    pages["product page"] = axe_audit(page, "product-page")

    # no results
    page.goto("/search/?q=cotton&price_min=9000000")
    expect(page.locator(".empty-state h2")).to_have_text("Nothing matches yet")
    pages["empty results"] = axe_audit(page, "empty-results")
    screenshot("30-a11y-empty-results")

    # error pages: a refused photo (400) and a missing page (404)
    page.goto("/")
    page.locator("#panel-photo").set_input_files(files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo" * 20}])
    page.wait_for_url(re.compile(r"/search/photo/"))
    expect(page.locator(".alert .reason")).to_have_text("This file is not a photo we can open. Try a JPEG or PNG.")
    pages["photo error"] = axe_audit(page, "photo-error")
    screenshot("31-a11y-photo-error")
    page.goto("/no-such-page/")
    pages["not found"] = axe_audit(page, "not-found")

    # then: no violations anywhere
    failures = {name: found for name, found in pages.items() if found}
    assert failures == {}, "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in failures.items())
