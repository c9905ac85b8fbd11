"""Brands: one brand per spelling, and merging brands that a merchant knows are the same.

A brand name is matched to an existing brand by :func:`shop.cleaning.brand_key` (case, spaces,
punctuation and Latin accents ignored), so "FS Mini Klub" and "Fs Mini Klub" are one brand and
the first spelling saved stays the one shown. Merging moves products to the brand chosen as
canonical and re-indexes them, so the search filters show the merged brand at once.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from shop.cleaning import CleaningReport, brand_key
from shop.models import Brand, IndexState, Product


def brand_for_name(name: str | None, report: CleaningReport | None = None, cache: dict[str, Brand] | None = None) -> Brand | None:
    """The brand called ``name`` in any spelling, created when none matches.

    Args:
        name: a cleaned brand name (see ``shop.cleaning.product_values_clean``); blank: no brand.
        report: counts ``brand`` when the name matched a brand spelt differently.
        cache: ``{key: Brand}`` reused across calls (imports).

    Returns:
        The brand, or ``None`` for a blank name.
    """
    name = (name or "").strip()[:200]
    if not name:
        return None
    key = brand_key(name) or name
    brand = cache.get(key) if cache is not None else None
    if brand is None:
        brand = Brand.objects.filter(key=key).first() or Brand.objects.create(name=name)
        if cache is not None:
            cache[key] = brand
    if report is not None and brand.name != name:
        report.add("brand", example=f"{name} → {brand.name}")
    return brand


def brand_name_taken(name: str, *, exclude_pk: int | None = None) -> Brand | None:
    """The other brand whose name matches ``name`` in spelling-insensitive terms, if any."""
    others = Brand.objects.filter(key=brand_key(name) or name.strip())
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    return others.first()


def brands_merge(*, canonical: Brand, others: QuerySet[Brand] | list[Brand]) -> list[int]:
    """Move the products of ``others`` to ``canonical``, delete ``others`` and re-index the products moved.

    Args:
        canonical: the brand that stays (its name is the one shoppers see).
        others: brands merged into it (``canonical`` among them is ignored).

    Returns:
        The ids of the products moved; they are marked pending and their indexing is enqueued
        after the commit (the same path as a save in the admin).
    """
    from workers.tasks import enqueue_index

    other_ids = [b.pk for b in others if b.pk != canonical.pk]
    with transaction.atomic():
        moved = list(Product.objects.filter(brand_id__in=other_ids).values_list("pk", flat=True))
        Product.objects.filter(pk__in=moved).update(
            brand=canonical, index_state=IndexState.PENDING, index_error="", updated_at=timezone.now(),
        )
        Brand.objects.filter(pk__in=other_ids).delete()
        if moved:
            transaction.on_commit(lambda: enqueue_index(moved))
    return moved
