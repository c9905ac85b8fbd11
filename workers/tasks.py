"""Thin tasks: ids in, re-read the rows, call one service.

Enqueue them with ``transaction.on_commit`` (see ``shop.signals``) so a worker never reads a row
before it is committed. Transient failures retry with exponential backoff; when retries run
out the failure is recorded on the product, where the admin shows it.

The app modules a task calls are imported inside it: ``shop.signals`` imports this module in
every web process, which only enqueues, and ``search.services`` would bring the encoders (torch)
with it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from search.backends.base import SearchBackendError, SearchUnavailable

logger = logging.getLogger(__name__)

TRANSIENT = (SearchUnavailable, OperationalError, ConnectionError, TimeoutError)
#: What sending a task raises when the broker cannot be reached (after the publish retries).
BROKER_ERRORS = (KombuError, RedisError, OSError)
#: Recorded on a product whose indexing task could not be sent; the sweeper sends it again.
NOT_SENT_REASON = (
    "Waiting to be indexed: the task queue could not be reached when this product was saved. "
    "It is sent again automatically within a few minutes; nothing needs to be done."
)
#: Products per task when many are enqueued at once (imports, the sweeper): large enough for
#: batched encoding, small enough that a retry repeats little work.
BATCH_SIZE = 32


class IndexTask:
    """Retry policy shared by indexing tasks (Celery ``autoretry_for`` with backoff)."""

    autoretry_for = TRANSIENT
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 6


@shared_task(bind=True, acks_late=True, **{k: getattr(IndexTask, k) for k in vars(IndexTask) if not k.startswith("_")})
def index_products(self, product_ids: list[int]) -> dict:
    """Embed and index these products (missing ids are removed from the index)."""
    from search.services import product_record_failure, products_index  # late: see the module docstring

    try:
        report = products_index(product_ids=product_ids)
    except TRANSIENT:
        if self.request.retries >= self.max_retries:
            logger.exception("Indexing products %s failed for good", product_ids[:20])
            for pid in product_ids:
                product_record_failure(
                    product_id=pid,
                    reason=f"The search engine did not answer in {self.max_retries + 1} tries, so this product is not searchable yet. "
                    "Try again in a few minutes: save it, or select it in the product list and use “Re-index selected products”.",
                )
        raise
    if report.changed:  # edited while this task ran: they stay pending and are indexed again
        logger.info("%d products changed while being indexed; enqueued again", len(report.changed))
        enqueue_index(report.changed)
    return {"indexed": len(report.indexed), "failed": report.failed, "missing": report.missing, "changed": report.changed}


@shared_task(bind=True, acks_late=True, **{k: getattr(IndexTask, k) for k in vars(IndexTask) if not k.startswith("_")})
def unindex_product(self, product_id: int) -> None:
    """Remove a deleted product from the index."""
    from search.services import product_unindex  # late: see the module docstring

    product_unindex(product_id=product_id)


@shared_task
def sweep_stale_products() -> int:
    """Re-enqueue pending products whose task was lost: pending for ``INDEX_STALE_AFTER_S`` (a lost
    message, a dead worker), or at once when their task could not be sent (:data:`NOT_SENT_REASON`);
    and indexed products whose stored fused vectors are in a space the live index does not serve
    (``search.freshness.products_in_foreign_space``: a write that raced an index swap).

    Runs every ``INDEX_SWEEP_INTERVAL_S`` under Celery beat. Returns the number of products re-enqueued.
    """
    from search.backends import get_backend  # late: see the module docstring
    from search.freshness import products_in_foreign_space  # late: see the module docstring
    from shop.models import IndexState, Product  # late: see the module docstring

    cutoff = timezone.now() - timedelta(seconds=settings.INDEX_STALE_AFTER_S)
    pending = Product.objects.filter(index_state=IndexState.PENDING)
    ids = list(pending.filter(Q(updated_at__lt=cutoff) | Q(index_error=NOT_SENT_REASON)).values_list("pk", flat=True))
    sent = enqueue_index(ids)
    if sent:
        pending.filter(pk__in=sent, index_error=NOT_SENT_REASON).update(index_error="")
        logger.info("Sweeper re-enqueued %d stale products", len(sent))
    try:
        foreign = products_in_foreign_space(get_backend())
    except SearchBackendError as exc:
        logger.warning("Sweeper could not read the live index's fusion space: %s", exc)
        foreign = []
    if foreign:
        logger.info("Sweeper re-enqueued %d products whose fused vectors the live index does not serve", len(foreign))
        Product.mark_pending(foreign)
        foreign = enqueue_index(foreign)
    return len(sent) + len(foreign)


def enqueue_index(product_ids: list[int]) -> list[int]:
    """Send ``index_products`` tasks in batches of ``BATCH_SIZE`` (runs inline without a broker).

    A batch the broker does not take (Redis down) is not lost: its products stay pending with
    :data:`NOT_SENT_REASON`, the failure is logged, and the sweeper sends them at its next run.
    Never raises for a broker failure, so a saved product is answered as saved.

    Returns:
        The ids whose task was sent.
    """
    sent: list[int] = []
    for start in range(0, len(product_ids), BATCH_SIZE):
        batch = list(product_ids[start:start + BATCH_SIZE])
        try:
            index_products.delay(batch)
        except BROKER_ERRORS:
            logger.exception("Could not queue indexing of products %s; they stay pending for the sweeper", batch[:20])
            from shop.models import IndexState, Product  # late: see the module docstring

            Product.objects.filter(pk__in=batch, index_state=IndexState.PENDING).update(index_error=NOT_SENT_REASON)
        else:
            sent.extend(batch)
    return sent


def enqueue_unindex(product_id: int) -> bool:
    """Send ``unindex_product`` for a deleted product; a broker failure is logged, not raised.

    Returns:
        Whether the task was sent. If not, the product stays in the index until the next
        ``manage.py reindex``; searches never show it (results are read from the database).
    """
    try:
        unindex_product.delay(product_id)
    except BROKER_ERRORS:
        logger.exception("Could not queue the removal of deleted product %s from the search index; the next reindex drops it", product_id)
        return False
    return True


@shared_task
def purge_expired_state() -> int:
    """Delete expired rate-limit counters and photo tokens when the ``state`` cache is the database (CELERY_BEAT_SCHEDULE)."""
    from shop.state import state_purge_expired  # late: see the module docstring

    return state_purge_expired()


# -- click feedback -------------------------------------------------------------------------------------------
@shared_task(autoretry_for=TRANSIENT, retry_backoff=2, retry_backoff_max=300, max_retries=3)
def refresh_click_aggregates() -> dict:
    """Recompute the click priors from the event log (CELERY_BEAT_SCHEDULE); searches apply them after fusion."""
    from search.clicks.aggregates import click_aggregates_refresh  # late: see the module docstring

    return asdict(click_aggregates_refresh())


@shared_task
def purge_events() -> dict:
    """Delete search events older than ``CLICK_RETENTION_DAYS`` (CELERY_BEAT_SCHEDULE)."""
    from search.clicks.aggregates import events_purge  # late: see the module docstring

    return events_purge()
