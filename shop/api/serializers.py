"""Product representations for the API, and the validation of what merchants send."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from shop.merchant_services import MAX_CATEGORY_DEPTH, category_parts
from shop.models import Merchant, Product, ProductImage

#: Largest ``specifications`` object accepted (keys), and longest key / value (characters).
MAX_SPEC_KEYS = 100
MAX_SPEC_CHARS = 1000
MAX_PRICE = Decimal("9999999999.99")  # the column holds 12 digits, 2 after the point


class ProductImageSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Absolute URL of the stored JPEG.")

    class Meta:
        model = ProductImage
        fields = ["id", "url", "width", "height", "alt_text", "position", "is_primary", "source_name"]
        read_only_fields = fields

    def get_url(self, obj: ProductImage) -> str:
        request = self.context.get("request")
        url = obj.image.url
        return request.build_absolute_uri(url) if request else url


class ProductSerializer(serializers.ModelSerializer):
    """A product as shoppers and apps see it (prices are decimal strings in ``currency``)."""

    brand = serializers.CharField(source="brand.name", default=None, read_only=True, allow_null=True)
    category = serializers.CharField(source="category.path", default=None, read_only=True, allow_null=True)
    merchant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    images = ProductImageSerializer(many=True, read_only=True)

    class Meta:
        model = Product
        fields = [
            "id", "external_id", "title", "description", "brand", "category", "price", "list_price", "currency",
            "rating", "specifications", "merchant", "images", "index_state", "created_at", "updated_at",
        ]
        read_only_fields = fields


class ProductWriteSerializer(serializers.Serializer):
    """What a merchant sends to create or change a product (JSON, or one CSV row in a bulk upload)."""

    external_id = serializers.CharField(
        max_length=100, required=False, allow_null=True, allow_blank=True,
        help_text="Your own id for the product (unique); a bulk re-upload updates the product with the same id.",
    )
    title = serializers.CharField(max_length=500, help_text="Shown to shoppers; required.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    brand = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=200, help_text="Brand name; created if new.")
    category = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=1000,
        help_text="Category path, root first, e.g. 'Home Furnishing > Bath Linen > Towels'; created if new.",
    )
    price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0"), max_value=MAX_PRICE, required=False, allow_null=True)
    list_price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0"), max_value=MAX_PRICE, required=False, allow_null=True)
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, help_text="ISO 4217 code, e.g. INR.",
                                      error_messages={"invalid": "Currency must be a three-letter ISO 4217 code such as INR."})
    rating = serializers.FloatField(min_value=0, max_value=5, required=False, allow_null=True)
    specifications = serializers.DictField(child=serializers.CharField(max_length=MAX_SPEC_CHARS, allow_blank=True), required=False)
    merchant = serializers.SlugRelatedField(
        slug_field="slug", queryset=Merchant.objects.all(), required=False, allow_null=True,
        help_text="Slug of the merchant that owns the product; needed only for staff of several merchants and superusers.",
    )

    def validate_external_id(self, value: str | None) -> str | None:
        value = (value or "").strip() or None
        if value is None:
            return None
        others = Product.objects.filter(external_id=value)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(f"Another product already has the external id {value!r}.")
        return value

    def validate_title(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The title cannot be blank.")
        return value.strip()

    def validate_category(self, value: str | None) -> str:
        parts = category_parts(value or "")
        if len(parts) > MAX_CATEGORY_DEPTH:
            raise serializers.ValidationError(f"The category path has {len(parts)} levels; the limit is {MAX_CATEGORY_DEPTH}.")
        if any(len(p) > 200 for p in parts):
            raise serializers.ValidationError("Each category name must be at most 200 characters.")
        return " > ".join(parts)

    def validate_specifications(self, value: dict) -> dict:
        if len(value) > MAX_SPEC_KEYS:
            raise serializers.ValidationError(f"At most {MAX_SPEC_KEYS} specifications.")
        if any(len(k) > MAX_SPEC_CHARS for k in value):
            raise serializers.ValidationError(f"Specification names must be at most {MAX_SPEC_CHARS} characters.")
        return value

    def validate_merchant(self, value: Merchant | None) -> Merchant | None:
        user = self.context["request"].user
        if value is not None and not user.is_superuser and not value.staff.filter(pk=user.pk).exists():
            raise serializers.ValidationError(f"You are not on the staff of merchant {value.slug!r}.")
        if value is None and not user.is_superuser and "merchant" in self.initial_data:
            raise serializers.ValidationError("Only a superuser can make a product without a merchant.")
        return value

    def validate(self, attrs: dict) -> dict:
        price = attrs.get("price", getattr(self.instance, "price", None))
        list_price = attrs.get("list_price", getattr(self.instance, "list_price", None))
        if price is not None and list_price is not None and list_price < price:
            raise serializers.ValidationError({"list_price": "The list price (before discount) cannot be below the price."})
        return attrs


class IndexStateSerializer(serializers.ModelSerializer):
    """Where a product stands in the indexing pipeline (pending -> indexed / failed with the reason)."""

    class Meta:
        model = Product
        fields = ["id", "index_state", "index_error", "indexed_at", "updated_at"]
        read_only_fields = fields


class ImageUploadSerializer(serializers.Serializer):
    image = serializers.FileField(
        allow_empty_file=True,
        help_text="The photo (JPEG, PNG, WebP, GIF, BMP or TIFF; detected from its content). Stored re-encoded as JPEG without metadata.",
    )
    make_primary = serializers.BooleanField(required=False, default=False, help_text="Show this photo first (the first photo is always primary).")
    alt_text = serializers.CharField(required=False, allow_blank=True, max_length=300)


class BulkUploadSerializer(serializers.Serializer):
    csv = serializers.FileField(help_text="UTF-8 CSV with a header: external_id, title, description, brand, category, price, list_price, currency, image.")
    images = serializers.FileField(required=False, help_text="Zip of the photos named in the CSV's image column.")
    merchant = serializers.SlugRelatedField(slug_field="slug", queryset=Merchant.objects.all(), required=False)


class BulkRowSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="Row number as a spreadsheet shows it (the header is row 1).")
    external_id = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=["created", "updated", "error"])
    product_id = serializers.IntegerField(allow_null=True)
    field = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)


class BulkReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    errors = serializers.IntegerField()
    rows = BulkRowSerializer(many=True)
