"""Merchant admin: products with their photos, indexing state at a glance, re-index on demand.

A photo uploaded here goes through the same checks as an imported one
(``mlmodels.images.open_image``): a corrupt, truncated, oversized or non-image file is a form
error with the reason, and nothing already saved changes. Accepted photos are stored like
imported ones: re-encoded JPEG, EXIF rotation applied, metadata dropped. The product's text is
cleaned as an import cleans it (``shop.cleaning``), and the merchant is told what changed.
A product's page ends with "How shoppers find this product" (``shop.insights_admin``): the
queries that showed and clicked it, and where it ranks for a query typed in, and why.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from mlmodels.images import ImageRejected
from shop import merchant_admin  # noqa: F401  (registers MerchantAdmin)
from shop.brand_admin import ProductCountAdminMixin  # also registers BrandAdmin
from shop.cleaning import product_values_clean
from shop.insights_admin import ProductInsightsAdminMixin
from shop.models import Category, IndexState, Product, ProductImage
from shop.permissions import MerchantScopedAdminMixin
from shop.services import encode_for_storage, photo_open_for_storage
from shop.signals import products_mark_pending
from shop.templatetags.shop_tags import inr

#: Badge colours of the indexing states (background, text).
STATE_COLOURS = {
    IndexState.PENDING: ("#fff4d6", "#7a5300"),
    IndexState.INDEXED: ("#dff5e7", "#116036"),
    IndexState.FAILED: ("#fde2e2", "#8a1c1c"),
}


admin.site.site_header = "Bazaar merchant admin"
admin.site.site_title = "Bazaar admin"
admin.site.index_title = "Catalog and search"
admin.site.enable_nav_sidebar = False  # the product list needs the width


def _thumbnail(image: ProductImage | None, size: int) -> str:
    if image is None or not image.image:
        return format_html('<span style="color:#666">{}</span>', "no photo")
    return format_html(
        '<img src="{}" alt="" style="width:{}px;height:{}px;object-fit:contain;background:#fff;'
        'border:1px solid #ddd;border-radius:6px">',
        image.image.url, size, size,
    )


class PhotoField(forms.ImageField):
    """An image upload checked by ``open_image`` and converted to the stored form (JPEG, no metadata).

    Raises ``ValidationError`` with the decoder's reason: empty, over ``MAX_IMAGE_BYTES``, not an
    image, truncated or corrupt, over ``MAX_IMAGE_PIXELS`` (including decompression bombs) or
    ``MAX_IMAGE_SIDE``. The stored JPEG is at most ``PHOTO_STORED_MAX_SIDE`` px.
    """

    def to_python(self, data):
        upload = forms.FileField.to_python(self, data)  # name, emptiness; skips Django's own decoding
        if upload is None:
            return None
        reason = getattr(upload, "rejected_reason", None)
        if reason:
            raise ValidationError(reason, code="too_large")
        try:
            stored = SimpleUploadedFile("photo.jpg", encode_for_storage(photo_open_for_storage(upload)), content_type="image/jpeg")
        except ImageRejected as exc:
            raise ValidationError(exc.reason, code="invalid_image") from None
        stored.source_name = upload.name or ""
        return stored


class ProductImageForm(forms.ModelForm):
    image = PhotoField(help_text="JPEG, PNG, WebP, GIF, BMP or TIFF; stored as JPEG with EXIF rotation applied.")

    class Meta:
        model = ProductImage
        fields = ("image", "is_primary", "position", "alt_text")

    def save(self, commit: bool = True) -> ProductImage:
        source = getattr(self.cleaned_data.get("image"), "source_name", None)
        if source is not None:
            self.instance.source_name = source[:255]
        return super().save(commit)


class ProductImageFormSet(forms.BaseInlineFormSet):
    """At most one primary photo; with none chosen, the first remaining photo becomes primary."""

    def clean(self) -> None:
        super().clean()
        primaries = [
            f for f in self.forms
            if getattr(f, "cleaned_data", None) and f.cleaned_data.get("is_primary") and not f.cleaned_data.get("DELETE")
        ]
        if len(primaries) > 1:
            raise ValidationError("Mark only one photo as primary.")

    def save(self, commit: bool = True):
        # One primary per product is a database constraint; clear the flag first so that moving
        # it from one photo to another never breaks it mid-save, then set it on the chosen photo.
        chosen = next(
            (f for f in self.forms if getattr(f, "cleaned_data", None) and f.cleaned_data.get("is_primary")
             and not f.cleaned_data.get("DELETE")),
            None,
        )
        with transaction.atomic():
            ProductImage.objects.filter(product=self.instance, is_primary=True).update(is_primary=False)
            for form in self.forms:
                if form.instance.pk and getattr(form, "cleaned_data", None) and not form.cleaned_data.get("DELETE"):
                    form.instance.is_primary = False
            saved = super().save(commit)
            primary = chosen.instance if chosen is not None and chosen.instance.pk else (
                ProductImage.objects.filter(product=self.instance).order_by("position", "id").first()
            )
            if primary is not None:
                ProductImage.objects.filter(pk=primary.pk).update(is_primary=True)
        return saved


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    form = ProductImageForm
    formset = ProductImageFormSet
    extra = 1
    ordering = ("position", "id")
    fields = ("preview", "image", "is_primary", "position", "alt_text", "source_name", "dimensions")
    readonly_fields = ("preview", "source_name", "dimensions")

    @admin.display(description="Preview")
    def preview(self, obj: ProductImage) -> str:
        return _thumbnail(obj if obj.pk else None, 80)

    @admin.display(description="Size")
    def dimensions(self, obj: ProductImage) -> str:
        return f"{obj.width}×{obj.height} px" if obj.pk and obj.width else "-"


class ProductForm(forms.ModelForm):
    """The product form: the text is cleaned on save (``shop.cleaning``); ``form.cleaning`` says what changed."""

    class Meta:
        model = Product
        fields = "__all__"

    def clean_specifications(self):
        specs = self.cleaned_data.get("specifications")
        if specs in (None, ""):
            return {}
        if not isinstance(specs, dict):
            raise ValidationError('Write the specifications as name-value pairs in braces, e.g. {"Material": "Cotton", "Colour": "White"}.')
        return specs

    def clean(self):
        data = super().clean()
        given = {k: data[k] for k in ("title", "description", "specifications") if k in data and data[k] is not None}
        cleaned, self.cleaning = product_values_clean(given)
        if "title" in given and not cleaned["title"]:
            self.add_error("title", "The title has no words once spaces and stray characters are removed; type the product's name.")
        data.update(cleaned)
        return data


class RootCategoryFilter(admin.SimpleListFilter):
    """Filter by top-level category (and everything below it): a short list instead of every node."""

    title = "category"
    parameter_name = "root_category"

    def lookups(self, request, model_admin):
        return [(str(c.pk), c.name) for c in Category.objects.filter(parent__isnull=True)]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        root = Category.objects.filter(pk=self.value(), parent__isnull=True).first()
        if root is None:
            return queryset.none()
        return queryset.filter(
            Q(category__path=root.path) | Q(category__path__startswith=root.path + Category.PATH_SEPARATOR)
        )


@admin.register(Product)
class ProductAdmin(MerchantScopedAdminMixin, ProductInsightsAdminMixin, admin.ModelAdmin):
    """Products; a product's page ends with "How shoppers find this product" (``shop.insights_admin``)."""

    form = ProductForm
    inlines = [ProductImageInline]
    list_display = ("thumbnail", "title", "brand", "category_name", "price_inr", "rating", "merchant", "index_badge", "photo_check")
    list_display_links = ("thumbnail", "title")
    list_filter = ("index_state", "merchant", RootCategoryFilter, "brand")
    list_select_related = ("brand", "category", "merchant", "embedding")
    search_fields = ("title", "external_id", "brand__name", "category__path")
    readonly_fields = ("index_badge", "index_error", "indexed_at", "created_at", "updated_at", "source_row_display", "photo_check")
    autocomplete_fields = ("brand", "category")
    actions = ["reindex_selected"]
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("merchant", "title", "brand", "category", "description")}),
        ("Price and rating", {"fields": (("price", "list_price", "currency"), "rating")}),
        ("Details", {"fields": ("specifications", "external_id")}),
        ("As imported", {"fields": ("source_row_display",), "classes": ("collapse",),
                         "description": "The row from the catalog file or bulk upload, before cleaning. Read only."}),
        ("Search index", {"fields": ("index_badge", "index_error", "indexed_at", "created_at", "updated_at", "photo_check")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Product]:
        return super().get_queryset(request).prefetch_related("images")

    def view_on_site(self, obj: Product) -> str:
        return reverse("shop:product", args=[obj.pk])

    def save_model(self, request: HttpRequest, obj: Product, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        cleaning = getattr(form, "cleaning", None)
        if cleaning:
            self.message_user(request, f"Cleaned before saving: {cleaning.describe()}.", messages.INFO)

    @admin.display(description="Photo matches words")
    def photo_check(self, obj: Product) -> str:
        """Photo-text consistency (search.consistency): the score, flagged when it suggests a wrong photo."""
        from search.consistency import likely_mismatch

        emb = getattr(obj, "embedding", None) if obj.pk else None
        if emb is None or emb.consistency is None:
            return "-"
        if likely_mismatch(emb):
            return format_html('<span class="photo-mismatch" title="{}" style="color:#b00;font-weight:600">&#9888; {}</span>',
                               "The photo matches this product's words less than 99% of the catalog: check it is the right photo.",
                               f"{emb.consistency:.2f} likely wrong photo")
        return f"{emb.consistency:.2f}"

    @admin.display(description="Source row")
    def source_row_display(self, obj: Product) -> str:
        if not obj.source_row:
            return "Typed in, not imported: no source row."
        return format_html(
            '<pre class="source-row" style="white-space:pre-wrap;max-width:900px;max-height:420px;overflow:auto;'
            'margin:0;font-size:12px">{}</pre>', json.dumps(obj.source_row, ensure_ascii=False, indent=2),
        )

    @admin.display(description="Photo")
    def thumbnail(self, obj: Product) -> str:
        return _thumbnail(obj.primary_image, 48)

    @admin.display(description="Category", ordering="category__path")
    def category_name(self, obj: Product) -> str:
        if not obj.category:
            return "-"
        parts = obj.category.path.split(Category.PATH_SEPARATOR)
        short = parts[0] if len(parts) == 1 else f"{parts[0]} › {parts[-1]}"
        return format_html('<span title="{}">{}</span>', obj.category.path, short)

    @admin.display(description="Price", ordering="price")
    def price_inr(self, obj: Product) -> str:
        return inr(obj.price) if obj.price is not None else "-"

    @admin.display(description="Index", ordering="index_state")
    def index_badge(self, obj: Product) -> str:
        background, colour = STATE_COLOURS.get(obj.index_state, ("#eee", "#333"))
        badge = format_html(
            '<span class="index-badge index-{}" style="display:inline-block;padding:2px 9px;border-radius:10px;'
            'font-weight:600;font-size:11px;background:{};color:{}">{}</span>',
            obj.index_state, background, colour, obj.get_index_state_display(),
        )
        if obj.index_state == IndexState.FAILED and obj.index_error:
            error = obj.index_error if len(obj.index_error) <= 160 else obj.index_error[:157] + "…"
            return format_html('{}<div class="index-error" style="color:#8a1c1c;font-size:11px;max-width:320px">{}</div>', badge, error)
        return badge

    @admin.action(description="Re-index selected products")
    def reindex_selected(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        ids = products_mark_pending(queryset.values_list("pk", flat=True), clear_error=True)
        self.message_user(request, f"{len(ids)} product{'s' if len(ids) != 1 else ''} queued for re-indexing.", messages.SUCCESS)


@admin.register(Category)
class CategoryAdmin(ProductCountAdminMixin, admin.ModelAdmin):
    list_display = ("path", "name", "product_count")
    search_fields = ("path", "name")
    list_filter = (("parent", admin.EmptyFieldListFilter),)
    autocomplete_fields = ("parent",)
    readonly_fields = ("path",)
    fields = ("name", "parent", "path", "slug")
    prepopulated_fields = {"slug": ("name",)}
