"""The admin cleans what a merchant types, shows the source row read-only, keeps one brand per
spelling and merges brands. Real parts: the indexed Flipkart sample, SQLite, the real encoders
and the embedded engine when a merge re-indexes (tasks run in-process)."""

from __future__ import annotations

from html import unescape

import pytest

from search.backends import get_backend
from search.backends.base import SearchFilters
from shop.models import Brand, IndexState, Product
from tests.test_merchant_admin import change_form_data

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def product(indexed_catalog) -> Product:
    return Product.objects.filter(pk__in=indexed_catalog.product_ids, images__isnull=False).order_by("pk").first()


def test_a_product_saved_in_the_admin_is_cleaned_and_the_merchant_is_told(admin_client, product):
    # given: what a merchant might paste
    posted = change_form_data(
        product,
        title="Cotton  Bath Towel &amp; Napkin Set",
        description="Soft cotton towel for daily use.\r\nSoft cotton towel for daily use.",
        specifications='{"Material": "Cotton", "Pattern": "NA", "Colour": "N/A"}',
    )
    posted["images-TOTAL_FORMS"] = posted["images-INITIAL_FORMS"]  # no new photo
    # when
    response = admin_client.post(f"/admin/shop/product/{product.pk}/change/", posted, follow=True)
    # then
    assert response.redirect_chain
    product.refresh_from_db()
    assert product.title == "Cotton Bath Towel & Napkin Set"
    assert product.description == "Soft cotton towel for daily use."
    assert product.specifications == {"Material": "Cotton"}
    message = unescape(response.content.decode())
    assert "Cleaned before saving: placeholder values removed (NA, N/A, -, null, empty) (2): 'Pattern: NA', 'Colour: N/A'" in message
    assert "repeated sentences or paragraphs collapsed (1)" in message


def test_specifications_that_are_not_name_value_pairs_are_a_form_error(admin_client, product):
    # when
    response = admin_client.post(f"/admin/shop/product/{product.pk}/change/", change_form_data(product, specifications='["Cotton"]'))
    # then
    assert response.status_code == 200
    assert "Write the specifications as name-value pairs in braces" in unescape(response.content.decode())


def test_the_source_row_is_shown_read_only(admin_client, product):
    # when
    html = unescape(admin_client.get(f"/admin/shop/product/{product.pk}/change/").content.decode())
    # then: the Flipkart row as imported, and no field to edit it
    assert 'class="source-row"' in html and f'"uniq_id": "{product.external_id}"' in html
    assert 'name="source_row"' not in html


def test_a_brand_in_another_spelling_is_refused_with_the_existing_name(admin_client):
    # given
    Brand.objects.create(name="FS Mini Klub")
    # when
    response = admin_client.post("/admin/shop/brand/add/", {"name": "fs mini-klub", "slug": "fs-mini-klub-2"})
    # then
    assert response.status_code == 200
    assert "This brand already exists as “FS Mini Klub”. Choose that brand instead" in unescape(response.content.decode())
    assert Brand.objects.filter(key="fsminiklub").count() == 1


def test_merging_brands_asks_which_one_stays_then_moves_and_reindexes_the_products(admin_client, product, django_capture_on_commit_callbacks):
    # given: two spellings that slipped in before keys (a brand renamed into a near-duplicate)
    keep = Brand.objects.create(name="Mini Klub")
    other = Brand.objects.create(name="Mini Klub Kids")
    Product.objects.filter(pk=product.pk).update(brand=other, index_state=IndexState.INDEXED)
    ids = [keep.pk, other.pk]
    # when: the action first shows the choice
    choice = admin_client.post("/admin/shop/brand/", {"action": "merge_brands", "_selected_action": ids})
    # then
    page = unescape(choice.content.decode())
    assert choice.status_code == 200 and "Choose the brand that stays" in page
    assert f'value="{other.pk}" checked' in page  # the brand with the most products is offered first
    # when: the merchant keeps "Mini Klub"
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(
            "/admin/shop/brand/", {"action": "merge_brands", "_selected_action": ids, "canonical": keep.pk, "apply": "1"}, follow=True,
        )
    # then: one brand, the product moved and indexed again under it
    assert "Merged “Mini Klub Kids” into “Mini Klub”: 1 product moved and queued for re-indexing." in unescape(done.content.decode())
    assert not Brand.objects.filter(pk=other.pk).exists()
    product.refresh_from_db()
    assert (product.brand_id, product.index_state) == (keep.pk, IndexState.INDEXED)
    backend = get_backend()
    backend.refresh()
    assert [h.id for h in backend.search_text(None, filters=SearchFilters(brands=("Mini Klub",)))] == [product.pk]
    assert backend.search_text(None, filters=SearchFilters(brands=("Mini Klub Kids",))) == []
