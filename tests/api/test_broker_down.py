"""Writes while the task broker is down: the product is saved, answered as saved and indexed later.

The broker is a real Redis URL on a port nothing listens on (what the web process sees while
Redis is down); sending a task fails after Celery's publish retries. The end-to-end version, with
a real Redis stopped and started under a real worker and beat, is
tests/attacks/test_writes_under_load.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from search.backends import get_backend, reset_backends
from shop.models import IndexState, Product
from tests.attacks.servers import celery_send_to
from workers.celery import app as celery_app
from workers.tasks import NOT_SENT_REASON, sweep_stale_products


@pytest.fixture
def broker_down() -> Iterator[None]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    previous = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    celery_send_to(f"redis://127.0.0.1:{port}/0")
    try:
        yield
    finally:
        celery_send_to(previous[0], eager=previous[1])


def test_a_product_created_while_the_broker_is_down_answers_201_pending_with_the_reason(world, broker_down, django_capture_on_commit_callbacks, caplog):
    client = world.client("merchant_a")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/products/", {"title": "Outage cotton hand towel", "price": "199"}, format="json")
    # then: saved and answered as saved, pending with the reason, the failure logged
    assert response.status_code == 201, response.content
    assert response.json()["index_state"] == "pending"
    state = client.get(f"/api/products/{response.json()['id']}/index-state/").json()
    assert (state["index_state"], state["index_error"]) == ("pending", NOT_SENT_REASON)
    assert "Could not queue indexing of products" in caplog.text


def test_edits_and_deletes_while_the_broker_is_down_answer_as_done(world, broker_down, django_capture_on_commit_callbacks):
    client = world.client("merchant_a")
    with django_capture_on_commit_callbacks(execute=True):
        edited = client.patch(f"/api/products/{world.product_a.pk}/", {"title": "Acme waffle bath towel"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        deleted = client.delete(f"/api/products/{world.product_a.pk}/")
    assert edited.status_code == 200 and edited.json()["title"] == "Acme waffle bath towel"
    assert deleted.status_code == 204 and not Product.objects.filter(pk=world.product_a.pk).exists()


@pytest.fixture
def own_index(settings, tmp_path):
    """An index folder of this test's own (the shared catalog's index stays as it was)."""
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": tmp_path / "index"}}
    reset_backends()
    yield
    reset_backends()


def test_the_sweeper_sends_an_unsent_product_at_its_next_run_without_waiting_for_it_to_go_stale(
    world, broker_down, own_index, django_capture_on_commit_callbacks,
):
    # given: a product whose task could not be sent a moment ago
    with django_capture_on_commit_callbacks(execute=True):
        pk = world.client("merchant_a").post("/api/products/", {"title": "Outage linen napkin", "price": "99"}, format="json").json()["id"]
    assert Product.objects.get(pk=pk).index_error == NOT_SENT_REASON
    # when: the broker is back (here: tasks run in-process) and the sweeper runs
    celery_send_to("", eager=True)
    swept = sweep_stale_products()
    # then
    product = Product.objects.get(pk=pk)
    assert swept == 1 and (product.index_state, product.index_error) == (IndexState.INDEXED, "")
    backend = get_backend()
    backend.refresh()
    assert [h.id for h in backend.search_text("outage linen napkin")] == [pk]
