"""Saving or deleting a product (or one of its photos) enqueues indexing after the commit."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from shop.models import IndexState, Product, ProductImage

_state = threading.local()


@contextmanager
def indexing_deferred():
    """Inside this block saves enqueue nothing (bulk imports enqueue once, in batches, at the end)."""
    previous = getattr(_state, "deferred", False)
    _state.deferred = True
    try:
        yield
    finally:
        _state.deferred = previous


def _enqueue(product_id: int) -> None:
    if getattr(_state, "deferred", False):
        return
    from workers.tasks import enqueue_index  # late: workers.tasks loads the Celery app; this module loads at start-up

    Product.objects.filter(pk=product_id).update(index_state=IndexState.PENDING, index_error="", updated_at=timezone.now())
    # If the broker cannot take the task, enqueue_index records why on the product (still pending)
    # and the sweeper sends it later: the save itself has succeeded.
    transaction.on_commit(lambda: enqueue_index([product_id]))


@receiver(post_save, sender=Product)
def product_saved(sender, instance: Product, raw: bool = False, **kwargs) -> None:
    if not raw:
        _enqueue(instance.pk)


@receiver(post_save, sender=ProductImage)
@receiver(post_delete, sender=ProductImage)
def product_image_changed(sender, instance: ProductImage, **kwargs) -> None:
    if not kwargs.get("raw") and Product.objects.filter(pk=instance.product_id).exists():
        _enqueue(instance.product_id)


@receiver(post_delete, sender=Product)
def product_deleted(sender, instance: Product, **kwargs) -> None:
    if getattr(_state, "deferred", False):
        return
    from workers.tasks import enqueue_unindex  # late: as above

    pk = instance.pk
    transaction.on_commit(lambda: enqueue_unindex(pk))
