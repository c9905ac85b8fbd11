"""A merchant's view of search in a real browser: "How shoppers find this product" on the
product's admin page (Debian's Chromium, headless, against the live server).

Real parts: a sample of the Flipkart catalog imported and indexed with the real encoders, a
merchant's staff member who signs in with a password, and shoppers' searches and clicks
recorded through the click services (with their guards). The panel passes the axe-core audit.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from search.clicks import services
from search.clicks.aggregates import click_aggregates_refresh
from shop.merchant_services import merchant_staff_add
from shop.models import Merchant, Product
from tests.browser.conftest import ARTIFACTS, DESKTOP_CHROME

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"
QUERY = "cotton bath towel"


def test_merchant_sees_how_shoppers_find_a_product_and_where_it_ranks(page, screenshot, axe_audit, shop_catalog, django_user_model):
    # given: a merchant owning a real towel, which shoppers saw and clicked for "cotton bath towel"
    merchant = Merchant.objects.create(name="Sathiya Linen")
    django_user_model.objects.create_user("linen", password=PASSWORD)
    merchant_staff_add(merchant=merchant, user=django_user_model.objects.get(username="linen"))
    sample = Product.objects.filter(pk__in=shop_catalog.product_ids).order_by("pk")
    towel = sample.filter(title__icontains="towel").first()
    Product.objects.filter(pk=towel.pk).update(merchant=merchant)
    others = list(sample.exclude(pk=towel.pk).values_list("pk", flat=True)[:8])
    for s in range(4):  # four shoppers on four networks (the click prior counts a click two networks share)
        shown = services.impression_record(query=QUERY, product_ids=[others[0], towel.pk, *others[1:6]], session_key=f"shopper-{s}",
                                           user_agent=DESKTOP_CHROME, ip=f"198.51.{100 + s}.1")
        if s < 3:
            assert services.click_record(token=shown.token, product_id=towel.pk, position=2, session_key=f"shopper-{s}",
                                         user_agent=DESKTOP_CHROME, ip=f"198.51.{100 + s}.1").counted
    services.impression_record(query="bath towel", product_ids=[*others[:4], towel.pk], session_key="shopper-9", user_agent=DESKTOP_CHROME)
    click_aggregates_refresh()  # the clicks become the click prior that search adds

    # when: the merchant signs in and opens the product's page
    page.goto(f"/admin/login/?next=/admin/shop/product/{towel.pk}/change/")
    page.locator("#id_username").fill("linen")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url(re.compile(rf"/admin/shop/product/{towel.pk}/change/"))
    page.get_by_role("link", name="How shoppers find it").click()

    # then: the searches that showed it and that led to clicks
    panel = page.locator("#how-shoppers-find")
    expect(panel.get_by_role("heading", name="How shoppers find this product")).to_be_visible()
    expect(panel.locator(".queries-shown tbody tr").first).to_contain_text(QUERY)
    expect(panel.locator(".queries-shown tbody tr").first).to_contain_text("75.0 %")
    expect(panel.locator(".queries-shown tbody tr").nth(1)).to_contain_text("bath towel")
    expect(panel.locator(".queries-clicked tbody tr")).to_have_count(1)

    # when: the merchant checks where it ranks for words a shopper might type
    panel.get_by_label("Words a shopper might type").fill(QUERY)
    panel.get_by_role("button", name="Check rank").click()
    page.wait_for_url(re.compile(r"rank_q=cotton\+bath\+towel"))

    # then: its rank and why, in plain labels; the period chosen is kept
    expect(panel.locator(".rank-headline")).to_contain_text(re.compile(r"this product ranks #\d+ of \d+ results"))
    expect(panel.locator(".score-parts tbody th").first).to_have_text(re.compile(r"BM25|Text kNN|Fused kNN"))
    expect(panel.locator(".score-parts")).to_contain_text("Keyword match on title, brand, category and description")
    expect(panel.locator(".score-parts .part-clicks th")).to_have_text("Click prior")
    screenshot("40-admin-how-shoppers-find")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / "41-admin-how-shoppers-find-panel.png"))
    violations = axe_audit(page, "admin-how-shoppers-find", within="#how-shoppers-find")
    assert violations == [], "\n".join(violations)

    # and: a product nobody searched for says so in plain words
    quiet = sample.exclude(pk__in=[towel.pk, *others]).first()
    Product.objects.filter(pk=quiet.pk).update(merchant=merchant)
    page.goto(f"/admin/shop/product/{quiet.pk}/change/#how-shoppers-find")
    expect(panel.locator(".insights-empty").first).to_have_text(
        "No shopper has seen this product in search results in the last 30 days. It appears here once searches show it."
    )
    panel.screenshot(path=str(ARTIFACTS / "42-admin-how-shoppers-find-empty.png"))

    # and: another merchant's staff member gets the admin's "doesn't exist" for the towel's page, rank box or not
    rival = Merchant.objects.create(name="Rival Linen")
    django_user_model.objects.create_user("rival", password=PASSWORD)
    merchant_staff_add(merchant=rival, user=django_user_model.objects.get(username="rival"))
    page.context.clear_cookies()
    page.goto(f"/admin/login/?next=/admin/shop/product/{towel.pk}/change/%3Frank_q%3Dtowel")
    page.locator("#id_username").fill("rival")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    expect(page.locator(".messagelist")).to_contain_text("doesn’t exist")
    expect(page.locator("#how-shoppers-find")).to_have_count(0)
