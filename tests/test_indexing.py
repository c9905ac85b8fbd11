"""Saving products without a broker: tasks run in-process at commit, with the real encoders.

Each test writes to its own index folder, so the shared ``indexed_catalog`` index stays intact.
"""

from __future__ import annotations

import pytest

from mlmodels.images import ImageRejected
from search.backends import get_backend, reset_backends
from search.models import ProductEmbedding
from search.services import products_index
from shop.models import IndexState, Product
from shop.services import product_image_add
from tests.factories import ProductFactory, photo_bytes

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def own_index(settings, tmp_path):
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": tmp_path / "index"}}
    settings.MEDIA_ROOT = tmp_path / "media"
    reset_backends()
    yield get_backend()
    reset_backends()


def test_saving_a_product_without_a_broker_indexes_it_at_commit(own_index, django_capture_on_commit_callbacks):
    # when: no photo and no description
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        product = ProductFactory(title="Okapi Silk Scarf", description="")
        # then: nothing runs before the commit
        assert Product.objects.get(pk=product.pk).index_state == IndexState.PENDING
    # then
    assert len(callbacks) == 1
    product.refresh_from_db()
    assert (product.index_state, product.index_error) == (IndexState.INDEXED, "")
    assert [h.id for h in own_index.search_text("okapi scarf")] == [product.pk]
    assert own_index.get_vectors("image", [product.pk]) == {}
    assert own_index.search_vector("text", own_index.get_vectors("text", [product.pk])[product.pk], k=1)[0].id == product.pk


def test_adding_a_photo_gives_the_product_an_image_vector(own_index, django_capture_on_commit_callbacks):
    # given
    with django_capture_on_commit_callbacks(execute=True):
        product = ProductFactory(title="Tapir Clay Vase")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        product_image_add(product=product, data=photo_bytes((90, 140, 30), size=(200, 150), seed=21), source_name="vase.png")
    # then
    vector = own_index.get_vectors("image", [product.pk]).get(product.pk)
    assert vector is not None
    assert own_index.search_vector("image", vector, k=1)[0].id == product.pk
    assert ProductEmbedding.objects.get(product=product).image_hash != ""


def test_a_refused_photo_stores_nothing_and_keeps_the_old_one(own_index):
    # given
    product = ProductFactory(title="Ibis Table Lamp")
    kept = product_image_add(product=product, data=photo_bytes(size=(64, 64)), source_name="lamp.jpg")
    # when
    with pytest.raises(ImageRejected, match="The file is empty"):
        product_image_add(product=product, data=b"", source_name="empty.jpg")
    # then
    assert [(i.pk, i.is_primary) for i in product.images.all()] == [(kept.pk, True)]


def test_unchanged_products_are_not_reencoded(own_index):
    # given
    product = ProductFactory(title="Lemur Cotton Socks")
    product_image_add(product=product, data=photo_bytes(size=(80, 80), seed=22))
    products_index(product_ids=[product.pk])
    first = ProductEmbedding.objects.get(product=product)
    # when
    products_index(product_ids=[product.pk])
    # then: the same vectors (bytes) and hashes; a reindex only rewrites the index
    second = ProductEmbedding.objects.get(product=product)
    assert (bytes(second.text_vector), second.text_hash, second.image_hash) == (bytes(first.text_vector), first.text_hash, first.image_hash)


def test_indexing_a_deleted_product_removes_it_from_the_index(own_index):
    # given
    product = ProductFactory(title="Gecko Phone Stand")
    products_index(product_ids=[product.pk])
    pk = product.pk
    Product.objects.filter(pk=pk).delete()
    # when
    report = products_index(product_ids=[pk])
    # then
    assert report.missing == [pk]
    assert pk not in own_index.ids()
