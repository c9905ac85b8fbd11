"""Admin for brands: one brand per spelling, and merging brands into the one chosen as canonical."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from shop.brands import brand_name_taken, brands_merge
from shop.cleaning import CleaningReport, clean_text
from shop.models import Brand


class ProductCountAdminMixin:
    """A sortable "Products" column: the number of products pointing at each row (one annotated query)."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(n_products=Count("products"))

    @admin.display(description="Products", ordering="n_products")
    def product_count(self, obj) -> int:
        return obj.n_products


class BrandForm(forms.ModelForm):
    """A brand name, cleaned like product text, refused when another brand has it in another spelling."""

    class Meta:
        model = Brand
        fields = ("name", "slug")

    def clean_name(self) -> str:
        name = clean_text(self.cleaned_data.get("name") or "", CleaningReport())
        if not any(ch.isalnum() for ch in name):
            raise ValidationError("A brand name needs at least one letter or digit.")
        other = brand_name_taken(name, exclude_pk=self.instance.pk)
        if other is not None:
            raise ValidationError(
                f"This brand already exists as “{other.name}”. Choose that brand instead, "
                "or rename it if its spelling is wrong."
            )
        return name


@admin.register(Brand)
class BrandAdmin(ProductCountAdminMixin, admin.ModelAdmin):
    form = BrandForm
    list_display = ("name", "slug", "product_count")
    search_fields = ("name",)
    prepopulated_fields = {"slug": ("name",)}
    actions = ["merge_brands"]

    @admin.action(description="Merge selected brands into one", permissions=["change", "delete"])
    def merge_brands(self, request: HttpRequest, queryset: QuerySet[Brand]) -> HttpResponse | None:
        """First a page to choose the brand that stays; then the merge (``shop.brands.brands_merge``)."""
        brands = list(queryset.annotate(n=Count("products")).order_by("-n", "pk"))
        if len(brands) < 2:
            self.message_user(request, "Select at least two brands to merge.", messages.WARNING)
            return None
        chosen = request.POST.get("canonical", "")
        if "apply" in request.POST:
            canonical = next((b for b in brands if str(b.pk) == chosen), None)
            if canonical is None:
                self.message_user(request, "Choose the brand to keep, then merge again.", messages.ERROR)
                return None
            others = [b for b in brands if b.pk != canonical.pk]
            moved = brands_merge(canonical=canonical, others=others)
            names = ", ".join(f"“{b.name}”" for b in others)
            self.message_user(
                request,
                f"Merged {names} into “{canonical.name}”: {len(moved)} product{'s' if len(moved) != 1 else ''} "
                "moved and queued for re-indexing.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Merge brands",
            "opts": self.model._meta,
            "brands": brands,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/shop/brand/merge.html", context)
