"""Changes that alter what a product's search document says enqueue its indexing after the commit.

That is: saving or deleting a product or one of its photos, renaming a brand, and renaming or
moving a category (every product of the subtree: its documents carry the whole category path).
Each such change marks the products pending and raises their ``index_version`` by one in the
database (``F() + 1``); the indexer marks a product indexed only if the version it read is
still the stored one, so an edit that lands while a task runs keeps the product pending.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import contextmanager

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from shop.models import Brand, Category, Product, ProductImage

_state = threading.local()


@contextmanager
def indexing_deferred():
    """Inside this block saves enqueue nothing (bulk imports enqueue once, in batches, at the end).

    Products changed inside it are still marked pending (with their version raised), so a
    caller that never enqueues leaves them to the sweeper rather than marked indexed.
    """
    previous = getattr(_state, "deferred", False)
    _state.deferred = True
    try:
        yield
    finally:
        _state.deferred = previous


def products_mark_pending(product_ids: Iterable[int], *, clear_error: bool = False) -> list[int]:
    """Mark products pending and raise their ``index_version``; enqueue them after the commit.

    Tasks go out in batches (``workers.tasks.enqueue_index``), unless inside
    :func:`indexing_deferred`.

    Args:
        product_ids: the products whose search documents changed.
        clear_error: also forget the last failure's reason (a re-index on demand).

    Returns:
        The ids, in the order given, without repeats.
    """
    ids = Product.mark_pending(product_ids, clear_error=clear_error)
    if not ids:
        return ids
    if not getattr(_state, "deferred", False):
        from workers.tasks import enqueue_index  # late: workers.tasks loads the Celery app; this module loads at start-up

        transaction.on_commit(lambda: enqueue_index(ids))
    return ids


@receiver(post_save, sender=Product)
def product_saved(sender, instance: Product, raw: bool = False, **kwargs) -> None:
    if not raw:
        products_mark_pending([instance.pk])


@receiver(post_save, sender=ProductImage)
@receiver(post_delete, sender=ProductImage)
def product_image_changed(sender, instance: ProductImage, **kwargs) -> None:
    if not kwargs.get("raw") and Product.objects.filter(pk=instance.product_id).exists():
        products_mark_pending([instance.product_id])


@receiver(post_delete, sender=Product)
def product_deleted(sender, instance: Product, **kwargs) -> None:
    if getattr(_state, "deferred", False):
        return
    from workers.tasks import enqueue_unindex  # late: as above

    pk = instance.pk
    transaction.on_commit(lambda: enqueue_unindex(pk))


# -- brands and categories: their names are in the products' documents --------------------------------
@receiver(pre_save, sender=Brand)
def brand_before_save(sender, instance: Brand, raw: bool = False, **kwargs) -> None:
    instance.previous_name = None
    if not raw and not instance._state.adding and instance.pk is not None:
        instance.previous_name = Brand.objects.filter(pk=instance.pk).values_list("name", flat=True).first()


@receiver(post_save, sender=Brand)
def brand_saved(sender, instance: Brand, raw: bool = False, created: bool = False, **kwargs) -> None:
    previous = getattr(instance, "previous_name", None)
    if not raw and not created and previous is not None and previous != instance.name:
        products_mark_pending(Product.objects.filter(brand=instance).order_by("pk").values_list("pk", flat=True))


@receiver(post_save, sender=Category)
def category_saved(sender, instance: Category, raw: bool = False, created: bool = False, **kwargs) -> None:
    """A renamed or moved category: every product in its subtree gets the new path (see ``Category.save``)."""
    previous = getattr(instance, "previous_path", None)
    if not raw and not created and previous is not None and previous != instance.path:
        subtree = instance.subtree_ids()
        products_mark_pending(Product.objects.filter(category_id__in=subtree).order_by("pk").values_list("pk", flat=True))


@receiver(pre_delete, sender=Brand)
@receiver(pre_delete, sender=Category)
def brand_or_category_before_delete(sender, instance, **kwargs) -> None:
    # Products keep their row (``on_delete=SET_NULL``) but lose the name from their documents.
    instance.product_ids = list(instance.products.values_list("pk", flat=True))


@receiver(post_delete, sender=Brand)
@receiver(post_delete, sender=Category)
def brand_or_category_deleted(sender, instance, **kwargs) -> None:
    products_mark_pending(getattr(instance, "product_ids", []))
