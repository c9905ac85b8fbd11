"""Index freshness: an edit racing its indexing task, brand and category renames, stale fusion spaces.

Real parts: a committed SQLite file (``transaction=True``, so another thread's connection sees
the rows), the real encoders, the embedded engine in this test's folder, and tasks run
in-process at commit (no broker). The racing edit is committed from another thread while the
indexer is between reading the product and recording its state: at that moment the engine
is handed the documents (a subclass of the real engine runs the edit first).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from rest_framework.test import APIClient

from search.backends import get_backend, reset_backends
from search.backends.base import SearchFilters
from search.backends.embedded import EmbeddedSearchBackend
from search.models import ProductEmbedding
from search.services import products_index
from shop.models import Category, IndexState, Product
from shop.signals import indexing_deferred
from tests.factories import BrandFactory, CategoryFactory, ProductFactory
from workers.tasks import index_products, sweep_stale_products

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def own_index(settings, tmp_path):
    with indexing_deferred():  # only this test's products (deleted while their photos are reachable)
        Product.objects.all().delete()
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": tmp_path / "index"}}
    settings.MEDIA_ROOT = tmp_path / "media"
    reset_backends()
    yield get_backend()
    reset_backends()


class EditWhileWriting(EmbeddedSearchBackend):
    """The real embedded engine; the first ``add_bulk`` first runs ``edit`` in another thread and waits for it."""

    edit: Callable[[], None] | None = None

    def add_bulk(self, docs):
        edit, self.edit = self.edit, None
        if edit is not None:
            in_thread(edit)
        super().add_bulk(docs)


def in_thread(work: Callable[[], None]) -> None:
    """Run ``work`` on its own thread (its own database connection) and wait for it; re-raise its error."""
    errors: list[BaseException] = []

    def run():
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the edit did not finish"
    if errors:
        raise errors[0]


def racing_backend(own_index, edit: Callable[[], None]) -> EditWhileWriting:
    backend = EditWhileWriting(own_index.params, dict(own_index.vector_dims))
    backend.edit = edit
    return backend


def retitle(pk: int, title: str, *, deferred: bool = False) -> Callable[[], None]:
    """An edit as the admin makes it (load, change, save, commit); ``deferred``: its task stays queued."""
    def edit():
        with indexing_deferred() if deferred else transaction.atomic():
            product = Product.objects.get(pk=pk)
            product.title = title
            product.save()
    return edit


def found(backend, text: str) -> list[int]:
    backend.refresh()
    return [h.id for h in backend.search_text(text)]


def state(pk: int) -> str:
    return Product.objects.values_list("index_state", flat=True).get(pk=pk)


# -- compare-and-set -------------------------------------------------------------------------------------------
def test_an_edit_committed_while_its_product_is_indexed_stays_pending_and_is_indexed_again(own_index):
    # given an indexed product
    product = ProductFactory(title="Okapi Linen Apron", description="")
    assert state(product.pk) == IndexState.INDEXED
    version, indexed_at = Product.objects.values_list("index_version", "indexed_at").get(pk=product.pk)
    # when it is re-indexed, and the merchant's edit commits after the task read the row (its own
    # task still queued)
    backend = racing_backend(own_index, retitle(product.pk, "Okapi Linen Tea Towel", deferred=True))
    report = products_index(product_ids=[product.pk], backend=backend)
    # then the task wrote what it had read, but does not call it indexed, not even for a moment
    # (the compare-and-set missed: the time of the last indexing is the previous one's)
    assert (report.changed, report.indexed) == ([product.pk], [])
    assert state(product.pk) == IndexState.PENDING
    assert Product.objects.values_list("index_version", "indexed_at").get(pk=product.pk) == (version + 1, indexed_at)
    assert found(own_index, "okapi apron") == [product.pk]
    assert found(own_index, "tea towel") == []
    # when the task that enqueues it again runs (here: the indexing task on its id)
    result = index_products.apply(args=[[product.pk]]).get()
    # then the new title is searchable, the old one is gone, and the product is indexed
    assert result["indexed"] == 1 and result["changed"] == []
    assert state(product.pk) == IndexState.INDEXED
    assert found(own_index, "okapi tea towel") == [product.pk]
    assert found(own_index, "apron") == []


def test_a_task_that_loses_the_race_enqueues_the_product_again_and_the_newest_title_wins(own_index, monkeypatch):
    # given an indexed product, and a task about to index it again
    product = ProductFactory(title="Quokka Felt Slippers", description="")
    # when the edit commits mid-task and its own task runs at once (in the editing thread), so the
    # slower first task writes the old title over it afterwards
    backend = racing_backend(own_index, retitle(product.pk, "Quokka Wool Mittens"))
    monkeypatch.setattr("search.services.get_backend", lambda *a, **k: backend)
    result = index_products.apply(args=[[product.pk]]).get()
    # then the first task saw the change, enqueued the product again, and the newest title won
    assert result["changed"] == [product.pk]
    assert state(product.pk) == IndexState.INDEXED
    assert found(own_index, "quokka mittens") == [product.pk]
    assert found(own_index, "slippers") == []


def test_a_save_never_writes_back_the_index_version_it_read(own_index):
    # given two copies of a product read at the same version
    product = ProductFactory(title="Gecko Desk Lamp")
    stale_copy = Product.objects.get(pk=product.pk)
    Product.objects.get(pk=product.pk).save()  # an edit elsewhere: version + 1
    seen = Product.objects.get(pk=product.pk).index_version
    # when the stale copy is saved
    stale_copy.title = "Gecko Desk Lamp, brass"
    stale_copy.save()
    # then the version still moved forward (a task that read `seen` cannot mark this save indexed)
    assert Product.objects.get(pk=product.pk).index_version == seen + 1


# -- brand and category renames ----------------------------------------------------------------------------------
def test_a_brand_rename_reaches_the_index_and_its_filter(own_index):
    # given two indexed products of one brand
    brand = BrandFactory(name="Quoll Outfitters")
    first = ProductFactory(title="Trail running vest", brand=brand, description="")
    second = ProductFactory(title="Merino hiking socks", brand=brand, description="")
    assert set(found(own_index, "quoll")) == {first.pk, second.pk}
    # when the brand is renamed
    with transaction.atomic():
        brand.name = "Numbat Outfitters"
        brand.save()
        # then its products are pending (their documents still say the old name) until the commit
        assert {state(first.pk), state(second.pk)} == {IndexState.PENDING}
    # then after the commit they are indexed again with the new name
    assert {state(first.pk), state(second.pk)} == {IndexState.INDEXED}
    assert set(found(own_index, "numbat")) == {first.pk, second.pk}
    assert found(own_index, "quoll") == []
    own_index.refresh()
    assert {h.id for h in own_index.search_text(None, filters=SearchFilters(brands=("Numbat Outfitters",)))} == {first.pk, second.pk}
    assert own_index.search_text(None, filters=SearchFilters(brands=("Quoll Outfitters",))) == []
    # and the storefront's brand filter (the public API) finds them by the new name
    api = APIClient()
    body = api.get("/api/search", {"q": "hiking socks", "brand": "Numbat Outfitters"}).json()
    assert body["results"][0]["id"] == second.pk
    assert {r["brand"] for r in body["results"]} == {"Numbat Outfitters"}
    assert api.get("/api/search", {"q": "hiking socks", "brand": "Quoll Outfitters"}).json()["count"] == 0


def test_a_category_rename_and_move_rewrite_the_paths_below_and_reindex_their_products(own_index):
    # given Tableware > Mugs > Espresso cups, with a product at the bottom, and another root
    root = CategoryFactory(name="Tableware")
    mugs = CategoryFactory(name="Mugs", parent=root)
    cups = CategoryFactory(name="Espresso cups", parent=mugs)
    kitchen = CategoryFactory(name="Kitchen")
    product = ProductFactory(title="Stoneware espresso cup", category=cups, description="")
    untouched = ProductFactory(title="Cast iron skillet", category=kitchen, description="")
    before = Product.objects.get(pk=untouched.pk).index_version

    # when the root is renamed
    root.name = "Table & Bar"
    root.save()
    # then every path below it follows, and the product is indexed under the new path
    assert Category.objects.get(pk=mugs.pk).path == "Table & Bar > Mugs"
    assert Category.objects.get(pk=cups.pk).path == "Table & Bar > Mugs > Espresso cups"
    assert state(product.pk) == IndexState.INDEXED
    own_index.refresh()
    assert [h.id for h in own_index.search_text(None, filters=SearchFilters(category="Table & Bar > Mugs"))] == [product.pk]
    assert own_index.search_text(None, filters=SearchFilters(category="Tableware")) == []

    # when Mugs moves under Kitchen
    mugs = Category.objects.get(pk=mugs.pk)
    mugs.parent = kitchen
    mugs.save()
    # then
    assert Category.objects.get(pk=cups.pk).path == "Kitchen > Mugs > Espresso cups"
    own_index.refresh()
    assert {h.id for h in own_index.search_text(None, filters=SearchFilters(category="Kitchen"))} == {product.pk, untouched.pk}
    assert own_index.search_text(None, filters=SearchFilters(category="Table & Bar")) == []
    assert found(own_index, "kitchen espresso")[:1] == [product.pk]
    # and a product outside the moved subtree was not re-indexed
    assert Product.objects.get(pk=untouched.pk).index_version == before

    # when a category is moved below its own descendant
    kitchen = Category.objects.get(pk=kitchen.pk)
    kitchen.parent = Category.objects.get(pk=cups.pk)
    with pytest.raises(ValidationError, match="a category cannot be moved below itself"):
        kitchen.save()
    # then nothing changed
    assert Category.objects.get(pk=kitchen.pk).parent_id is None
    assert Category.objects.get(pk=cups.pk).path == "Kitchen > Mugs > Espresso cups"


def test_deleting_a_brand_takes_its_name_out_of_the_products_documents(own_index):
    brand = BrandFactory(name="Tapir Lighting")
    product = ProductFactory(title="Paper pendant lamp", brand=brand, description="")
    assert found(own_index, "tapir") == [product.pk]
    # when
    brand.delete()
    # then the product stays, without the brand, and is indexed so
    assert Product.objects.get(pk=product.pk).brand_id is None
    assert state(product.pk) == IndexState.INDEXED
    assert found(own_index, "tapir") == []
    assert found(own_index, "pendant lamp") == [product.pk]


# -- stored fusion spaces ------------------------------------------------------------------------------------------
def test_the_sweeper_reindexes_products_whose_vectors_are_in_a_space_the_live_index_does_not_serve(own_index):
    # given two indexed products (and no other); one's stored vectors say they were made in a
    # space that is neither the live index's nor the active one (a write that raced an index swap)
    served = own_index.index_space()["version"]
    raced = ProductFactory(title="Marmot Down Jacket", description="")
    fine = ProductFactory(title="Marmot Rain Shell", description="")
    ProductEmbedding.objects.filter(product=raced).update(space_version="fusion-retired0000")
    before = Product.objects.get(pk=fine.pk).index_version
    # when the sweeper runs
    swept = sweep_stale_products.apply().get()
    # then only that product was indexed again, into the live index's space
    assert swept == 1
    assert ProductEmbedding.objects.get(product=raced).space_version == served
    assert state(raced.pk) == IndexState.INDEXED
    assert Product.objects.get(pk=fine.pk).index_version == before
