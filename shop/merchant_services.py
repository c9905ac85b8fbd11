"""Writes made by merchants: create, update and delete their products.

Each write is one transaction; the save signal enqueues indexing after the commit (see
``shop.signals``), so an API or bulk upload takes the same Celery path as the admin. The text
is cleaned first (``shop.cleaning.product_values_clean``, as for imports and the admin form);
what cleaning changed is left on the returned product as ``product.cleaning``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from shop.brands import brand_for_name
from shop.cleaning import CleaningReport, product_values_clean
from shop.models import Category, Merchant, Product
from shop.services import category_for_path

#: Fields a merchant sets directly; ``brand`` and ``category`` are given by name / path.
PRODUCT_FIELDS = ("external_id", "title", "description", "price", "list_price", "currency", "rating", "specifications", "source_row")
#: Deepest category path accepted from a merchant (the catalog's trees are at most 4 deep).
MAX_CATEGORY_DEPTH = 6


def category_parts(path: str) -> list[str]:
    """``"Home > Bath > Towels"`` -> ``["Home", "Bath", "Towels"]`` (empty parts dropped)."""
    return [p.strip() for p in (path or "").split(Category.PATH_SEPARATOR.strip()) if p.strip()]


def _apply(product: Product, values: dict[str, Any]) -> CleaningReport:
    values, report = product_values_clean(values)
    for key in PRODUCT_FIELDS:
        if key in values:
            setattr(product, key, values[key])
    if "brand" in values:
        product.brand = brand_for_name(values["brand"], report)
    if "category" in values:
        parts = category_parts(values["category"] or "")
        product.category = category_for_path(parts) if parts else None
    product.cleaning = report
    return report


def product_create(*, merchant: Merchant | None, title: str, **values: Any) -> Product:
    """Create a product for ``merchant`` (``None``: a catalog product, superusers only).

    Args:
        merchant: the owner.
        title: shown to shoppers; required.
        values: any of :data:`PRODUCT_FIELDS`, plus ``brand`` (a name, matched to an existing
            brand in any spelling, created if new) and ``category`` (a path ``"A > B > C"``,
            missing nodes created). ``price`` and ``list_price`` are ``Decimal`` in ``currency``.
            ``source_row`` (a dict) keeps the row of a bulk upload as sent.

    Returns:
        The saved product (``index_state`` pending; indexing runs after the commit), with
        ``product.cleaning`` (a ``CleaningReport``) telling what cleaning changed.
    """
    with transaction.atomic():
        product = Product(merchant=merchant)
        _apply(product, {"title": title, **values})
        product.full_clean(validate_unique=True)
        product.save()
    return product


def product_update(*, product: Product, **values: Any) -> Product:
    """Change the given fields of ``product`` (same keys as :func:`product_create`) and save it.

    The row is read again, locked, inside the transaction, so two edits of different fields made
    at the same moment both persist (neither writes back the other's stale values). Returns
    that fresh copy.
    """
    with transaction.atomic():
        product = Product.objects.select_for_update().get(pk=product.pk)
        _apply(product, values)
        if "merchant" in values:
            product.merchant = values["merchant"]
        product.full_clean(validate_unique=True)
        product.save()
    return product


def product_delete(*, product: Product) -> None:
    """Delete ``product`` and its photos; it leaves the search index after the commit."""
    with transaction.atomic():
        product.delete()


#: What a merchant's staff may do in the admin (their own products only: see shop.permissions).
MERCHANT_STAFF_GROUP = "Merchant staff"
MERCHANT_STAFF_PERMISSIONS = (
    "add_product", "change_product", "delete_product", "view_product",
    "add_productimage", "change_productimage", "delete_productimage", "view_productimage",
    "add_brand", "view_brand", "add_category", "view_category",
)


def merchant_staff_group():
    """The group holding :data:`MERCHANT_STAFF_PERMISSIONS` (created or completed on first use)."""
    group, _ = Group.objects.get_or_create(name=MERCHANT_STAFF_GROUP)
    perms = Permission.objects.filter(content_type__app_label="shop", codename__in=MERCHANT_STAFF_PERMISSIONS)
    group.permissions.add(*perms)
    return group


def merchant_staff_add(*, merchant: Merchant, user) -> None:
    """Make ``user`` staff of ``merchant``: admin access (``is_staff``) and the merchant staff group."""
    with transaction.atomic():
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        user.groups.add(merchant_staff_group())
        merchant.staff.add(user)
