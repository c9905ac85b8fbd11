"""Indexing through a real Redis broker and a real Celery worker process.

The worker shares this test's SQLite file, media folder and index folder, so what it writes is
read here exactly as a web process would read it. Rows are committed (``transactional_db``):
the worker cannot see an open transaction. The catalog is made here, not ``indexed_catalog``.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from search.backends import get_backend, reset_backends
from shop.models import IndexState, Product, ProductImage
from shop.services import product_image_add
from shop.signals import indexing_deferred
from tests.attacks.servers import stop, wait_for
from tests.factories import BrandFactory, CategoryFactory, ProductFactory, photo_bytes
from workers.celery import app as celery_app
from workers.tasks import sweep_stale_products

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The worker loads both encoders on its first task; on a busy 2-core machine that takes a while.
FIRST_TASK_TIMEOUT_S = 180
TASK_TIMEOUT_S = 60
#: How long the worker waits for the index write lock before the write fails as transient.
WORKER_LOCK_TIMEOUT_S = 1


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory) -> Path:
    """VAR_DIR of the worker: its media/ and search-index/ are also this test's."""
    return tmp_path_factory.mktemp("tasks-var")


@pytest.fixture(scope="module")
def worker_log(shared_dir) -> Path:
    return shared_dir / "worker.log"


@pytest.fixture(scope="module")
def celery_worker(django_db_setup, redis_url, shared_dir, worker_log) -> Iterator[subprocess.Popen]:
    """``celery -A workers worker --pool=solo`` on the test database file and this module's folders."""
    db_file = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_VAR_DIR": str(shared_dir),
        "DATABASE_URL": f"sqlite:///{db_file}",
        "CELERY_BROKER_URL": redis_url,
        "SEARCH_LOCK_TIMEOUT_S": str(WORKER_LOCK_TIMEOUT_S),
        "PYTHONPATH": str(REPO_ROOT),
    }
    with worker_log.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=solo", "-l", "info", "-n", "tasks-test@%h",
             "--without-mingle", "--without-gossip", "--without-heartbeat"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: process.poll() is not None or " ready." in worker_log.read_text(), 60, "the Celery worker to start")
        assert process.poll() is None, worker_log.read_text()[-3000:]
        yield process
    finally:
        stop(process)


@pytest.fixture(autouse=True)
def wired(settings, redis_url, celery_worker, shared_dir) -> Iterator[None]:
    """This process sends tasks to Redis and reads the folders the worker writes."""
    settings.MEDIA_ROOT = shared_dir / "media"
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": shared_dir / "search-index"}}
    reset_backends()
    previous = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    point_celery_at(redis_url, eager=False)
    try:
        yield
    finally:
        point_celery_at(previous[0], eager=previous[1])
        reset_backends()


def point_celery_at(broker_url: str, *, eager: bool) -> None:
    """Send this process's tasks to ``broker_url`` (or run them in-process when ``eager``).

    Celery pools producers per connection on first use, eager tasks included, so the pools are
    dropped here the way Celery itself drops them after a fork (``Celery._after_fork``).
    """
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.conf.update(broker_url=broker_url, task_always_eager=eager)


@pytest.fixture
def first_task_timeout(worker_log) -> float:
    """Long until the worker has indexed once (it loads the encoders then), short afterwards."""
    return TASK_TIMEOUT_S if "succeeded" in worker_log.read_text() else FIRST_TASK_TIMEOUT_S


def state_of(pk: int) -> tuple[str, str]:
    row = Product.objects.filter(pk=pk).values_list("index_state", "index_error").first()
    return row or ("gone", "")


def wait_until_state(pk: int, state: str, timeout: float, log: Path) -> str:
    def reached():
        current, error = state_of(pk)
        return error or "ok" if current == state else None

    try:
        return wait_for(reached, timeout, f"product {pk} to become {state}")
    except pytest.fail.Exception:
        print(log.read_text()[-5000:])
        raise


def new_product(title: str, *, photo: bytes | None = None) -> Product:
    """Save a product and its photo in one transaction (what the admin does); tasks go out on commit."""
    with transaction.atomic():
        product = ProductFactory(title=title, brand=BrandFactory(name="Worker Test"), category=CategoryFactory(name="Task Tests"))
        if photo is not None:
            product_image_add(product=product, data=photo, source_name="photo.jpg")
    return product


# -- the tests --------------------------------------------------------------------------------------------
def test_saved_product_is_indexed_by_the_worker_and_found_here(worker_log, first_task_timeout):
    # when
    product = new_product("Quokka Embroidered Cushion", photo=photo_bytes((180, 60, 20), size=(160, 120), seed=11))
    # then
    assert state_of(product.pk)[0] == IndexState.PENDING
    wait_until_state(product.pk, IndexState.INDEXED, first_task_timeout, worker_log)
    backend = get_backend()
    backend.refresh()
    assert [h.id for h in backend.search_text("quokka cushion")] == [product.pk]
    assert product.pk in backend.get_vectors("image", [product.pk])
    assert Product.objects.get(pk=product.pk).indexed_at is not None


def test_corrupt_photo_ends_failed_with_the_reason_and_the_product_is_found_by_its_title(worker_log, first_task_timeout):
    # given: a photo that was damaged in storage after it was accepted
    full = photo_bytes(size=(256, 256), seed=12)
    with transaction.atomic():
        product = ProductFactory(title="Wombat Ceramic Planter", brand=BrandFactory(name="Worker Test"), category=CategoryFactory(name="Task Tests"))
        image = ProductImage(product=product, is_primary=True, source_name="planter.jpg")
        image.image.save("planter.jpg", ContentFile(full[: len(full) // 2]), save=False)
        image.save()
    # when
    reason = wait_until_state(product.pk, IndexState.FAILED, first_task_timeout, worker_log)
    # then
    assert reason.startswith("Photo 'planter.jpg' was not used: The photo's data is truncated or corrupt, so it cannot be opened.")
    assert reason.endswith("Indexed by text only; upload a new photo and save to retry.")
    backend = get_backend()
    backend.refresh()
    assert [h.id for h in backend.search_text("wombat planter")] == [product.pk]
    assert backend.get_vectors("image", [product.pk]) == {}


def test_index_locked_by_another_writer_is_retried_until_it_succeeds(worker_log, first_task_timeout, shared_dir):
    # given: another process holds the index write lock (e.g. a long reindex swap)
    get_backend().count()  # make sure the index folder exists
    log_start = len(worker_log.read_text())
    with open(shared_dir / "search-index" / ".write.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            # when
            product = new_product("Pangolin Leather Wallet")
            wait_for(lambda: "IndexLocked" in worker_log.read_text()[log_start:], first_task_timeout, "the worker to hit the held lock")
            # then: the task backs off and stays pending while the lock is held
            assert state_of(product.pk)[0] == IndexState.PENDING
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    # then
    wait_until_state(product.pk, IndexState.INDEXED, TASK_TIMEOUT_S, worker_log)
    retried = worker_log.read_text()[log_start:]
    assert "retry: Retry in" in retried
    assert "The search index write lock was busy for 1 s" in retried
    get_backend().refresh()
    assert [h.id for h in get_backend().search_text("pangolin wallet")] == [product.pk]


def test_sweeper_reenqueues_a_stale_pending_product_and_leaves_fresh_ones(worker_log, first_task_timeout):
    # given: two products whose task was lost (saved without enqueueing); one pending for an hour
    with indexing_deferred():
        stale = ProductFactory(title="Axolotl Glass Terrarium", brand=BrandFactory(name="Worker Test"), category=CategoryFactory(name="Task Tests"))
        fresh = ProductFactory(title="Narwhal Bath Toy", brand=BrandFactory(name="Worker Test"), category=CategoryFactory(name="Task Tests"))
    Product.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    # when
    sweep_stale_products.delay()
    # then
    wait_until_state(stale.pk, IndexState.INDEXED, first_task_timeout, worker_log)
    assert state_of(fresh.pk)[0] == IndexState.PENDING
    get_backend().refresh()
    assert [h.id for h in get_backend().search_text("axolotl terrarium")] == [stale.pk]
    assert get_backend().search_text("narwhal") == []


def test_deleted_product_leaves_search(worker_log, first_task_timeout):
    # given
    product = new_product("Capybara Wool Blanket", photo=photo_bytes((30, 90, 160), size=(120, 120), seed=13))
    wait_until_state(product.pk, IndexState.INDEXED, first_task_timeout, worker_log)
    pk = product.pk
    backend = get_backend()
    wait_for(lambda: pk in backend.ids(), 5, "the product to be visible here")
    # when
    product.delete()
    # then
    wait_for(lambda: pk not in backend.ids(), TASK_TIMEOUT_S, f"product {pk} to leave the index")
    assert backend.search_text("capybara blanket") == []
    assert backend.get_vectors("image", [pk]) == {}


def test_a_brand_rename_is_indexed_by_the_worker(worker_log, first_task_timeout):
    # given an indexed product of a brand
    with transaction.atomic():
        brand = BrandFactory(name="Dugong Ceramics")
        product = ProductFactory(title="Glazed serving bowl", brand=brand, category=CategoryFactory(name="Task Tests"))
    wait_until_state(product.pk, IndexState.INDEXED, first_task_timeout, worker_log)
    # when the brand is renamed (the admin's save: one transaction)
    with transaction.atomic():
        brand.name = "Manatee Ceramics"
        brand.save()
    # then the product went pending and the worker indexed it under the new name
    wait_until_state(product.pk, IndexState.INDEXED, TASK_TIMEOUT_S, worker_log)
    backend = get_backend()
    wait_for(lambda: backend.refresh() or backend.search_text("manatee") != [], 5, "the new brand name to be searchable here")
    assert [h.id for h in backend.search_text("manatee")] == [product.pk]
    assert backend.search_text("dugong") == []


def test_the_worker_warms_up_as_it_starts(worker_log):
    # then: the worker process loaded the encoders and opened the index by itself (worker_process_init),
    # so its first task paid no model load
    wait_for(lambda: "Warm start: ready in" in worker_log.read_text(), FIRST_TASK_TIMEOUT_S, "the worker's warm start")
    log = worker_log.read_text()
    assert "Warm start (celery worker): loading the encoders and the index in the background" in log
    assert "Warm start failed" not in log
