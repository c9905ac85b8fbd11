"""Who may change which product: the rules used by the API and by the admin.

- Anyone (signed in or not) reads products and searches.
- A merchant's staff add products for their merchant and change or delete only its products.
- A superuser changes everything, including imported catalog products (no merchant).
- Anyone else (a shopper's account, a merchant's staff on another merchant's product) is refused.

Another merchant's product answers **403** through the API (products are public, so their
existence is no secret) and is simply absent from a merchant's admin list (the admin answers
its usual "doesn't exist" redirect for its change page).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from rest_framework import permissions
from rest_framework.exceptions import PermissionDenied

from shop.models import Merchant, Product

User = AbstractBaseUser | AnonymousUser


def merchants_of(user: User) -> QuerySet[Merchant]:
    """Merchants whose products ``user`` may manage (all of them for a superuser)."""
    if not user.is_authenticated:
        return Merchant.objects.none()
    if user.is_superuser:
        return Merchant.objects.all()
    return Merchant.objects.filter(staff=user)


def is_merchant_staff(user: User) -> bool:
    """True for a superuser or a member of at least one merchant's staff."""
    return bool(user.is_authenticated and (user.is_superuser or Merchant.objects.filter(staff=user).exists()))


def products_editable_by(user: User) -> QuerySet[Product]:
    """Products ``user`` may change: every product for a superuser, its merchants' for staff, none otherwise."""
    if not user.is_authenticated:
        return Product.objects.none()
    if user.is_superuser:
        return Product.objects.all()
    return Product.objects.filter(merchant__staff=user)


def can_edit_product(user: User, product: Product) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return product.merchant_id is not None and Merchant.objects.filter(pk=product.merchant_id, staff=user).exists()


def edit_refusal(user: User, product: Product, *, reading: bool = False) -> str:
    """Why ``user`` may not change ``product``, as a sentence for the API's 403.

    With ``reading``, why they may not read its owner-only details (its indexing state).
    """
    if reading:
        if product.merchant_id is None:
            return f"Product {product.pk} is an imported catalog product; only a superuser can see its indexing state."
        return f"Product {product.pk} belongs to another merchant; only that merchant's staff can see its indexing state."
    if product.merchant_id is None:
        return f"Product {product.pk} is an imported catalog product; only a superuser can change it."
    if not is_merchant_staff(user):
        return "Only merchant staff can add or change products; ask your merchant to add you to its staff."
    return f"Product {product.pk} belongs to another merchant; you can change only your own merchant's products."


class ProductAccess(permissions.BasePermission):
    """DRF permission for the product endpoints.

    Reads are public, except actions listed in the view's ``owner_only_actions`` (e.g. the
    indexing state, whose error text is for the merchant). Writes need merchant staff, and
    on an existing product, staff of the product's merchant (or a superuser).
    """

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS and view.action not in getattr(view, "owner_only_actions", ()):
            return True
        if not request.user or not request.user.is_authenticated:
            return False  # DRF answers 401 with the authentication header
        if request.method in permissions.SAFE_METHODS:
            return True  # owner-only reads are decided per object
        if not is_merchant_staff(request.user):
            raise PermissionDenied("Only merchant staff can add or change products; ask your merchant to add you to its staff.")
        return True

    def has_object_permission(self, request, view, obj: Product) -> bool:
        if request.method in permissions.SAFE_METHODS and view.action not in getattr(view, "owner_only_actions", ()):
            return True
        if not can_edit_product(request.user, obj):
            raise PermissionDenied(edit_refusal(request.user, obj, reading=request.method in permissions.SAFE_METHODS))
        return True


class IsMerchantStaff(permissions.BasePermission):
    """Signed in as merchant staff or a superuser (bulk upload)."""

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if not is_merchant_staff(request.user):
            raise PermissionDenied("Only merchant staff can upload products; ask your merchant to add you to its staff.")
        return True


class MerchantScopedAdminMixin:
    """For the product ``ModelAdmin``: merchant staff see and change only their merchants' products.

    A superuser sees everything. New products are assigned to the user's merchant when the
    user is staff of exactly one (otherwise the ``merchant`` field is required and limited to
    the user's merchants).
    """

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(merchant__staff=request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or can_edit_product(request.user, obj))

    def has_delete_permission(self, request, obj=None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or can_edit_product(request.user, obj))

    def has_view_permission(self, request, obj=None) -> bool:
        allowed = super().has_view_permission(request, obj)
        return allowed and (obj is None or request.user.is_superuser or can_edit_product(request.user, obj))

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        # Other merchants' names are not a merchant's business.
        return filters if request.user.is_superuser else tuple(f for f in filters if f != "merchant")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "merchant" and not request.user.is_superuser:
            own = merchants_of(request.user)
            kwargs["queryset"] = own
            kwargs["required"] = True
            if own.count() == 1:
                kwargs["initial"] = own.first()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj: Product, form, change: bool) -> None:
        if not request.user.is_superuser:
            own = list(merchants_of(request.user)[:2])
            if obj.merchant_id is None and len(own) == 1:
                obj.merchant = own[0]
            if obj.merchant_id is None or not can_edit_product(request.user, obj):
                raise DjangoPermissionDenied("You can save only your own merchant's products.")
        super().save_model(request, obj, form, change)
