"""Admin for merchants: their staff get admin access limited to the merchant's own products."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from shop.merchant_services import merchant_staff_add
from shop.models import Merchant


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    """Superusers manage merchants; adding a user to ``staff`` grants the merchant staff permissions."""

    list_display = ("name", "slug", "staff_count", "product_count", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("staff",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Merchant]:
        return super().get_queryset(request).annotate(n_staff=Count("staff", distinct=True), n_products=Count("products", distinct=True))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser

    @admin.display(description="Staff", ordering="n_staff")
    def staff_count(self, obj: Merchant) -> int:
        return obj.n_staff

    @admin.display(description="Products", ordering="n_products")
    def product_count(self, obj: Merchant) -> int:
        return obj.n_products

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        for user in form.instance.staff.all():
            merchant_staff_add(merchant=form.instance, user=user)
