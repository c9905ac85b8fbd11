"""The storefront's details in a real browser (Debian's Chromium, headless) against the live server:
the query photo as a chip, one photo flow from the home page and the header, usable by keyboard,
titles readable in full, the query time for staff only, the cleaned catalog as shoppers see it,
and brand merging and the source row in the admin.

Real parts: the Flipkart rows named below plus the usual sample, cleaned and imported, indexed
with the real encoders; tasks run in-process, so a merge re-indexes before the page returns.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from shop.models import Brand, Product

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CARD_TITLES = ".product-card .card-title a"
#: Real Flipkart rows that show what cleaning is for: the brand spelt two ways (5 "FS Mini Klub",
#: 3 "Fs Mini Klub"), a title with lost characters, NA specifications with a description written
#: twice, and the longest titles.
KLUB = ["8015db34d09642b046c775e8157dd729", "4e5ebfc871992e7e22365c0c036a1b89", "dc0b5ef48b4c132d0651613a9c1e8e40",
        "f7514f6068377bcaed80043a5e321131", "967d91e162afb44a67c0281f71766e4d", "c063d07d78a55a21bf6c0e7c8ae46a6d",
        "480d24adbc304a52a4e01e45bf8bbccc", "27b7851ae3dfc2ae8c1958cebe93bf0b"]
LOST_CHARACTERS = "22296bfc1c79d9dc88eabbd01220ef0c"  # "BeYOUtiful Copper Repouss\ufffd\ufffd - Man With Dhol ..."
NA_SPECS = "0c4718ae90f2889b7021a99ee1cc106c"  # Bergner Kadhai: "Pan Type: NA", description twice
LONG_TITLE = "799ddb97164ff2d5d53bb8b27b8c355f"  # 151 characters, "... Kadhai 0.7 L"


@pytest.fixture
def catalog(transactional_db):
    from search.backends import get_backend
    from search.services import products_index
    from shop.importers import read_catalog
    from shop.services import catalog_import
    from tests.browser.conftest import PER_CATEGORY
    from tests.conftest import flipkart_dir, sample_flipkart_ids

    wanted = set(sample_flipkart_ids(PER_CATEGORY)) | {*KLUB, LOST_CHARACTERS, NA_SPECS, LONG_TITLE}
    summary = catalog_import([r for r in read_catalog("flipkart", flipkart_dir()) if r.external_id in wanted])
    products_index(product_ids=summary.product_ids)
    # The index outlives the database between transactional tests: drop what earlier tests left,
    # so counts on the page are this catalog's.
    backend = get_backend()
    backend.delete(sorted(backend.ids() - set(summary.product_ids)))
    backend.refresh()
    return summary


def _photo_of(title_word: str) -> str:
    product = Product.objects.filter(title__icontains=title_word, images__isnull=False).order_by("pk").first()
    return str(settings.MEDIA_ROOT / product.primary_image.image.name)


def test_the_query_photo_is_a_chip_that_can_be_given_words_or_removed(page, screenshot, catalog):
    # given: the home page's photo panel; choosing the photo searches at once (no second click)
    page.goto("/")
    page.locator("#panel-photo").set_input_files(_photo_of("towel"))
    page.wait_for_url(re.compile(r"/search/\?img="))

    # then: the photo is shown as a thumbnail chip
    thumb = page.locator(".photo-chip img.photo-chip-thumb")
    expect(thumb).to_have_attribute("alt", "Your photo")
    assert thumb.evaluate("img => img.complete && img.naturalWidth") > 0
    expect(page.locator(".photo-chip")).to_contain_text("Searching by your photo")
    screenshot("10-photo-chip")

    # when: "Add words" puts the cursor in the search box, which keeps the photo
    page.locator(".photo-chip a", has_text="Add words").click()
    expect(page.locator("#header-q")).to_be_focused()
    page.keyboard.type("blue")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"img=.+&q=blue|q=blue.+img="))
    expect(page.locator(".photo-chip-text")).to_have_text("Searching by your photo and “blue”")
    screenshot("11-photo-chip-with-words")

    # when: the shopper removes the photo, the words stay
    page.locator(".photo-chip a", has_text="Remove photo").click()
    page.wait_for_url(re.compile(r"/search/\?q=blue$"))
    expect(page.locator(".photo-chip")).to_have_count(0)
    expect(page.locator(".results-count h1")).to_have_text("Results for “blue”")

    # and: the header camera works the same way from any page: choosing a photo searches at once
    page.goto(f"/p/{Product.objects.get(external_id=NA_SPECS).pk}/")
    page.locator("#header-photo").set_input_files(_photo_of("towel"))
    page.wait_for_url(re.compile(r"/search/\?img="))
    expect(page.locator(".photo-chip img.photo-chip-thumb")).to_be_visible()
    screenshot("12-header-photo-search")


def test_the_photo_button_is_part_of_the_drop_zone_and_works_by_keyboard(page, screenshot, catalog):
    # given: file-chooser interception switched on before any key is pressed (Playwright turns it
    # on without waiting for the browser's reply, so arming it inside ``expect_file_chooser`` alone
    # can lose the race against a fast key press)
    page.on("filechooser", lambda chooser: None)
    page.goto("/")
    # then: no native "Choose File" control shows; the label is the button
    box = page.locator("#panel-photo").bounding_box()
    assert box is None or (box["width"] <= 1 and box["height"] <= 1)
    expect(page.locator("label[for=panel-photo]")).to_have_text("Choose a photo")

    # when: the shopper tabs to it
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "panel-photo":
            break
    assert page.evaluate("document.activeElement.id") == "panel-photo"
    # then: the button shows a focus ring
    ring = page.locator("label[for=panel-photo]").evaluate("l => getComputedStyle(l).outlineStyle + ' ' + getComputedStyle(l).outlineWidth")
    assert ring == "solid 3px"
    page.locator(".photo-panel").screenshot(path=str(_artifact("13-keyboard-focus-photo-button")))

    # when: Space opens the file chooser; the chosen photo is searched at once
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(_photo_of("towel"))
    page.wait_for_url(re.compile(r"/search/\?img="))
    expect(page.locator(".photo-chip")).to_be_visible()


def _artifact(name: str):
    from tests.browser.conftest import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def test_long_titles_show_three_lines_and_stay_whole_for_hover_and_screen_readers(page, screenshot, catalog):
    # given
    full = Product.objects.get(external_id=LONG_TITLE).title
    # when
    page.goto("/search/?q=copper+kadhai+wok+bowl")
    # then: the card's link has the whole title as its text (its accessible name) and its title
    link = page.get_by_role("link", name=full, exact=True)
    expect(link).to_have_attribute("title", full)
    heading = link.locator("xpath=..")
    lines, clipped = heading.evaluate(
        "h => [Math.round(h.clientHeight / parseFloat(getComputedStyle(h).lineHeight)), h.scrollHeight > h.clientHeight + 1]"
    )
    assert (lines, clipped) == (3, True)
    screenshot("14-long-titles")


def test_the_query_time_is_shown_to_staff_only(page, screenshot, catalog, django_user_model):
    # given: a shopper
    page.goto("/search/?q=cotton+bath+towel")
    expect(page.locator(".results-count p")).to_contain_text("Showing 1–")
    expect(page.locator(".search-time")).to_have_count(0)
    # when: a staff member searches
    django_user_model.objects.create_superuser("boss", password="correct horse battery")
    page.goto("/admin/login/?next=/search/%3Fq%3Dcotton%2Bbath%2Btowel")
    page.locator("#id_username").fill("boss")
    page.locator("#id_password").fill("correct horse battery")
    page.locator("input[type=submit]").click()
    page.wait_for_url(re.compile(r"/search/\?q=cotton"))
    # then
    expect(page.locator(".search-time")).to_have_text(re.compile(r"^\(\d+ ms\)$"))
    screenshot("15-staff-sees-query-time")


def test_shoppers_see_the_cleaned_catalog_and_one_brand_per_spelling(page, screenshot, catalog):
    # a title whose lost characters were removed
    lost = Product.objects.get(external_id=LOST_CHARACTERS)
    page.goto(f"/p/{lost.pk}/")
    expect(page.locator("h1")).to_have_text("BeYOUtiful Copper Repouss - Man With Dhol Showpiece - 36 cm")

    # NA specifications dropped, the description shown once
    kadhai = Product.objects.get(external_id=NA_SPECS)
    page.goto(f"/p/{kadhai.pk}/")
    cells = page.locator(".specs td").all_inner_texts()
    assert cells and not [c for c in cells if c.strip().upper() in ("NA", "N/A", "-", "NA L")]
    expect(page.locator(".specs th", has_text="Pan Type")).to_have_count(0)
    expect(page.locator(".specs th", has_text="Capacity")).to_have_count(0)  # "NA L"
    description = page.locator(".product-description .prose").inner_text()
    first_sentence = kadhai.source_row["description"].split("\n")[-1].strip().split(". ")[0]
    assert kadhai.source_row["description"].count(first_sentence) == 2 and description.count(first_sentence) == 1
    screenshot("16-clean-product-page")

    # one brand in the filters for both spellings
    page.goto("/search/?q=baby+boy")
    labels = [t.strip() for t in page.locator(".facet-checks a span:nth-child(2)").all_inner_texts()]
    assert labels.count("FS Mini Klub") == 1 and "Fs Mini Klub" not in labels
    page.goto("/search/?brand=FS+Mini+Klub")
    expect(page.locator(".results-count p")).to_contain_text("of 8 products")
    screenshot("17-one-brand-in-filters")


def test_admin_merges_brands_and_shows_the_source_row(page, screenshot, catalog, django_user_model):
    # given: two products under a near-duplicate brand that an earlier edit created
    variant = Brand.objects.create(name="Mini Klub by FS")
    Product.objects.filter(external_id__in=KLUB[:2]).update(brand=variant)
    django_user_model.objects.create_superuser("boss", password="correct horse battery")
    page.goto("/admin/login/?next=/admin/shop/brand/%3Fq%3DKlub")
    page.locator("#id_username").fill("boss")
    page.locator("#id_password").fill("correct horse battery")
    page.locator("input[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/shop/brand/"))

    # when: both are selected and merged, keeping "FS Mini Klub"
    page.locator("#action-toggle").check()
    page.locator("select[name=action]").select_option("merge_brands")
    page.locator("button[name=index]").click()
    expect(page.locator("h1")).to_have_text("Merge brands")
    keep = Brand.objects.get(name="FS Mini Klub")
    expect(page.locator(".merge-brands label", has_text="FS Mini Klub (6 products)")).to_be_visible()
    page.locator(f"input[name=canonical][value='{keep.pk}']").check()
    screenshot("18-admin-merge-brands")
    page.locator("input[type=submit][value='Merge into the chosen brand']").click()

    # then
    expect(page.locator(".messagelist")).to_contain_text("Merged “Mini Klub by FS” into “FS Mini Klub”: 2 products moved and queued for re-indexing.")
    screenshot("19-admin-brands-merged")
    assert list(Brand.objects.filter(name__icontains="klub").values_list("name", flat=True)) == ["FS Mini Klub"]
    page.goto("/search/?brand=FS+Mini+Klub")
    expect(page.locator(".results-count p")).to_contain_text("of 8 products")

    # and: the product page in the admin shows the row as imported, read only
    kadhai = Product.objects.get(external_id=NA_SPECS)
    page.goto(f"/admin/shop/product/{kadhai.pk}/change/")
    page.locator("summary", has_text="As imported").click()
    expect(page.locator("pre.source-row")).to_contain_text('"uniq_id": "0c4718ae90f2889b7021a99ee1cc106c"')
    expect(page.locator("pre.source-row")).to_contain_text(r'{\"key\"=>\"Pan Type\", \"value\"=>\"NA\"}')
    screenshot("20-admin-source-row")

    # and: a photo that is not one is refused in plain words
    page.goto("/admin/shop/product/add/")
    page.locator("#id_title").fill("Hand-painted brass bowl")
    page.locator("input[name='images-0-image']").set_input_files(
        files=[{"name": "bowl.jpg", "mimeType": "image/jpeg", "buffer": b"%PDF-1.7 not a photo" * 10}]
    )
    page.locator("input[name=_save]").click()
    expect(page.locator(".errorlist")).to_contain_text("This file is not a photo we can open. Try a JPEG or PNG.")
    screenshot("21-admin-photo-error")
