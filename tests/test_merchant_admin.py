"""The merchant admin: products with their indexing state, photos checked on upload, re-index on demand.

Real parts: the indexed Flipkart sample (``indexed_catalog``), SQLite, the real photo decoder and,
for the re-index action, the real encoders and the embedded engine (tasks run in-process).
"""

from __future__ import annotations

import json
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from shop.models import IndexState, Product, ProductImage
from tests.photos import HEADER_CUT_JPEG, NOT_AN_IMAGE, OVERSIZED_JPEG, jpeg_bytes, png_bytes, png_with_declared_size

pytestmark = [pytest.mark.django_db]


def png(size=(120, 90), colour=(30, 120, 200)) -> bytes:
    return png_bytes(size, colour)


def change_form_data(product: Product, **changes) -> dict:
    """What the change form posts back for ``product`` unchanged, plus ``changes`` (field -> value)."""
    images = list(product.images.order_by("position", "id"))
    data = {
        "title": product.title,
        "brand": product.brand_id or "",
        "category": product.category_id or "",
        "description": product.description,
        "price": product.price if product.price is not None else "",
        "list_price": product.list_price if product.list_price is not None else "",
        "currency": product.currency,
        "rating": product.rating if product.rating is not None else "",
        "specifications": json.dumps(product.specifications),
        "external_id": product.external_id or "",
        "images-TOTAL_FORMS": len(images) + 1,
        "images-INITIAL_FORMS": len(images),
        "images-MIN_NUM_FORMS": 0,
        "images-MAX_NUM_FORMS": 1000,
    }
    for i, image in enumerate(images):
        data.update({
            f"images-{i}-id": image.pk,
            f"images-{i}-product": product.pk,
            f"images-{i}-position": image.position,
            f"images-{i}-alt_text": image.alt_text,
        })
        if image.is_primary:
            data[f"images-{i}-is_primary"] = "on"
    data.update({f"images-{len(images)}-product": product.pk, f"images-{len(images)}-position": len(images)})
    data.update(changes)
    return data


@pytest.fixture
def product(indexed_catalog) -> Product:
    # the newest product: first on the changelist, which lists newest first
    return Product.objects.filter(pk__in=indexed_catalog.product_ids, images__isnull=False).order_by("-created_at", "pk").first()


def test_changelist_shows_thumbnails_and_index_state_badges(admin_client, product):
    # given: one product whose indexing failed
    Product.objects.filter(pk=product.pk).update(index_state=IndexState.FAILED, index_error="Photo could not be decoded: truncated")

    # when
    response = admin_client.get("/admin/shop/product/")

    # then
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert 'class="index-badge index-indexed"' in html
    assert 'class="index-badge index-failed"' in html
    assert "Photo could not be decoded: truncated" in html
    assert product.primary_image.image.url in html  # the thumbnail
    assert "Re-index selected products" in html


def test_changelist_filters_by_index_state(admin_client, product):
    Product.objects.filter(pk=product.pk).update(index_state=IndexState.FAILED, index_error="boom")

    response = admin_client.get("/admin/shop/product/", {"index_state__exact": "failed"})

    assert response.status_code == 200
    assert [p.pk for p in response.context["cl"].result_list] == [product.pk]


def test_change_page_opens_with_the_photo_inline(admin_client, product):
    response = admin_client.get(f"/admin/shop/product/{product.pk}/change/")

    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert product.title in html
    assert "Search index" in html and "index-badge" in html
    assert product.primary_image.image.url in html


def test_brand_and_category_admins_open(admin_client, product):
    assert admin_client.get("/admin/shop/brand/").status_code == 200
    assert admin_client.get("/admin/shop/category/").status_code == 200
    assert admin_client.get(f"/admin/shop/category/{product.category_id}/change/").status_code == 200


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("broken.jpg", HEADER_CUT_JPEG, "truncated or corrupt"),
        ("cut.jpg", jpeg_bytes()[:1500], "truncated or corrupt"),
        ("notes.jpg", NOT_AN_IMAGE, "not a photo we can open"),
        ("empty.jpg", b"", "The submitted file is empty"),
        ("bomb.png", png_with_declared_size(60_000, 60_000), "the limit is 40 megapixels"),
        ("huge.jpg", OVERSIZED_JPEG, "The file is 11.0 MB; the limit is 10 MB"),
    ],
)
def test_corrupt_photo_upload_is_a_form_error_and_changes_nothing(admin_client, product, name, data, reason):
    # given
    photos_before = list(product.images.values_list("pk", "image", "is_primary"))
    posted = change_form_data(product, title="Renamed while adding a bad photo")
    posted[f"images-{len(photos_before)}-image"] = SimpleUploadedFile(name, data, content_type="image/jpeg")

    # when
    response = admin_client.post(f"/admin/shop/product/{product.pk}/change/", posted)

    # then: the form comes back with the reason next to the photo; what was saved is intact
    assert response.status_code == 200
    assert reason in unescape(response.content.decode())
    product.refresh_from_db()
    assert product.title != "Renamed while adding a bad photo"
    assert list(product.images.values_list("pk", "image", "is_primary")) == photos_before


def test_good_photo_upload_is_saved_as_jpeg_and_primary_stays_unique(admin_client, product):
    # given
    posted = change_form_data(product, price="1234.00")
    n = product.images.count()
    posted[f"images-{n}-image"] = SimpleUploadedFile("studio shot.png", png(), content_type="image/png")

    # when
    response = admin_client.post(f"/admin/shop/product/{product.pk}/change/", posted)

    # then
    assert response.status_code == 302, unescape(response.content.decode())[:2000]
    product.refresh_from_db()
    assert str(product.price) == "1234.00"
    images = list(product.images.order_by("position", "id"))
    assert len(images) == n + 1
    new = images[-1]
    assert new.source_name == "studio shot.png"
    assert new.image.name.endswith(".jpg") and (new.width, new.height) == (120, 90)
    with Image.open(new.image.path) as stored:
        assert stored.format == "JPEG"
    assert sum(i.is_primary for i in images) == 1
    assert product.index_state == IndexState.PENDING  # saving enqueued a re-index


def test_moving_the_primary_flag_to_a_new_photo(admin_client, product):
    n = product.images.count()
    old_primary = product.primary_image
    posted = change_form_data(product)
    for i in range(n):
        posted.pop(f"images-{i}-is_primary", None)
    posted[f"images-{n}-image"] = SimpleUploadedFile("front.png", png(colour=(250, 250, 0)), content_type="image/png")
    posted[f"images-{n}-is_primary"] = "on"

    response = admin_client.post(f"/admin/shop/product/{product.pk}/change/", posted)

    assert response.status_code == 302
    primaries = list(ProductImage.objects.filter(product=product, is_primary=True))
    assert len(primaries) == 1 and primaries[0].pk != old_primary.pk and primaries[0].source_name == "front.png"


def test_two_primary_photos_is_a_form_error(admin_client, product):
    n = product.images.count()
    posted = change_form_data(product)
    posted[f"images-{n}-image"] = SimpleUploadedFile("second.png", png(), content_type="image/png")
    posted[f"images-{n}-is_primary"] = "on"

    response = admin_client.post(f"/admin/shop/product/{product.pk}/change/", posted)

    assert response.status_code == 200
    assert "Mark only one photo as primary." in unescape(response.content.decode())
    assert product.images.count() == n


def test_reindex_action_marks_pending_then_indexes(admin_client, product, django_capture_on_commit_callbacks):
    # given
    others = list(Product.objects.exclude(pk=product.pk).order_by("pk").values_list("pk", flat=True)[:1])
    ids = [product.pk, *others]
    Product.objects.filter(pk__in=ids).update(index_state=IndexState.FAILED, index_error="stale")

    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post("/admin/shop/product/", {"action": "reindex_selected", "_selected_action": ids})

    # then: queued (pending, error cleared) and, once the task runs, indexed again
    assert response.status_code == 302
    assert set(Product.objects.filter(pk__in=ids).values_list("index_state", "index_error")) == {(IndexState.PENDING, "")}
    for callback in callbacks:
        callback()
    assert set(Product.objects.filter(pk__in=ids).values_list("index_state", flat=True)) == {IndexState.INDEXED}
    follow = admin_client.get(response["Location"])
    assert "2 products queued for re-indexing." in unescape(follow.content.decode())


def test_changelist_filters_by_top_level_category(admin_client, product):
    root = product.category.root

    response = admin_client.get("/admin/shop/product/", {"root_category": root.pk})

    listed = response.context["cl"].result_list
    assert response.status_code == 200
    assert product.pk in [p.pk for p in listed]
    assert all(p.category.path.split(" > ")[0] == root.name for p in listed)
    assert len(listed) == Product.objects.filter(category__path__startswith=root.path).count()
