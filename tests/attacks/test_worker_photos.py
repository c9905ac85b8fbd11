"""A stored photo cannot blow up the Celery worker that indexes it (issue 11, point 1).

Photos written straight to the media storage (a restore, a script, a storage bucket shared with
another tool) skip the upload checks. The worker decodes them within the same limits: a strip of
8 x 60,000 px is refused from its header, the product is marked failed with a plain reason and
still indexed by its text; a strip within the limits is indexed. A real Redis and a real worker
(production settings) run here; the worker's peak RSS may not grow by more than 200 MB a task.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.files.base import ContentFile
from django.db import transaction

from search.backends import get_backend, reset_backends
from shop.models import IndexState, Product, ProductImage
from shop.services import product_image_add
from tests.attacks.photos import small_photo, strip_png
from tests.attacks.servers import celery_send_to, peak_reset, production_env, start_celery_worker, stop, vm_kib, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAX_GROWTH_MB = 200
#: The worker loads both encoders on its first task; on a busy 2-core machine that takes a while.
FIRST_TASK_TIMEOUT_S = 240
TASK_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-var")


@pytest.fixture(scope="module")
def worker(django_db_setup, redis_url, shared_dir) -> Iterator:
    process = start_celery_worker(env=production_env(shared_dir, CELERY_BROKER_URL=redis_url), log=shared_dir / "worker.log")
    try:
        yield process
    finally:
        stop(process)


@pytest.fixture(autouse=True)
def wired(settings, redis_url, worker, shared_dir) -> Iterator[None]:
    """This process sends tasks to Redis and reads the media and index folders the worker uses."""
    from workers.celery import app

    settings.MEDIA_ROOT = shared_dir / "media"
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": shared_dir / "search-index"}}
    reset_backends()
    previous = app.conf.broker_url, app.conf.task_always_eager
    celery_send_to(redis_url)
    try:
        yield
    finally:
        celery_send_to(previous[0], eager=previous[1])
        reset_backends()


def product_with_stored_photo(title: str, data: bytes, *, checked: bool) -> Product:
    """A product whose photo went through the upload checks (``checked``) or was written straight to storage."""
    with transaction.atomic():
        product = Product.objects.create(title=title, price=100)
        if checked:
            product_image_add(product=product, data=data, source_name="photo.jpg")
        else:
            image = ProductImage(product=product, is_primary=True, source_name="restored.png")
            image.image.save("restored.png", ContentFile(data), save=False)
            image.save()
    return product


def indexed_state(pk: int, timeout: float, log) -> tuple[str, str]:
    def settled():
        state, error = Product.objects.filter(pk=pk).values_list("index_state", "index_error").get()
        return (state, error) if state != IndexState.PENDING else None

    try:
        return wait_for(settled, timeout, f"product {pk} to be indexed or fail")
    except pytest.fail.Exception:
        print(log.read_text()[-5000:])
        raise


@pytest.fixture
def warm_worker(worker, shared_dir):
    """The worker has indexed a product with a photo once (both encoders loaded)."""
    product = product_with_stored_photo("Warm-up cushion", small_photo(), checked=True)
    assert indexed_state(product.pk, FIRST_TASK_TIMEOUT_S, shared_dir / "worker.log") == (IndexState.INDEXED, "")
    return worker


def test_a_huge_stored_photo_fails_with_a_plain_reason_and_the_product_is_found_by_text(warm_worker, shared_dir):
    # given
    peak_reset(warm_worker.pid)
    before = vm_kib(warm_worker.pid, "VmRSS")
    # when
    product = product_with_stored_photo("Quetzal feather duster", strip_png(8, 60_000), checked=False)
    state, reason = indexed_state(product.pk, TASK_TIMEOUT_S, shared_dir / "worker.log")
    growth = (vm_kib(warm_worker.pid, "VmHWM") - before) / 1024
    # then
    assert state == IndexState.FAILED
    assert reason == (
        "Photo 'restored.png' was not used: The image is 8x60000 px; its sides may be at most 12,000 px. Send a photo of the product, "
        "scaled down. Indexed by text only; upload a new photo and save to retry."
    )
    backend = get_backend()
    backend.refresh()
    assert [h.id for h in backend.search_text("quetzal duster")] == [product.pk]
    assert growth < MAX_GROWTH_MB, f"the worker grew {growth:.0f} MB"


def test_a_long_stored_photo_within_the_limits_is_indexed_with_bounded_memory(warm_worker, shared_dir):
    # given
    peak_reset(warm_worker.pid)
    before = vm_kib(warm_worker.pid, "VmRSS")
    # when
    product = product_with_stored_photo("Toucan beak bottle opener", strip_png(8, 12_000), checked=False)
    state, reason = indexed_state(product.pk, TASK_TIMEOUT_S, shared_dir / "worker.log")
    growth = (vm_kib(warm_worker.pid, "VmHWM") - before) / 1024
    # then
    assert (state, reason) == (IndexState.INDEXED, "")
    backend = get_backend()
    backend.refresh()
    assert product.pk in backend.get_vectors("image", [product.pk])
    assert growth < MAX_GROWTH_MB, f"the worker grew {growth:.0f} MB"
