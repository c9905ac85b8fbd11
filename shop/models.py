"""Catalog domain: brands, a category tree, products and their photos."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.text import slugify

from shop.cleaning import brand_key


class NamedModel(models.Model):
    """A unique name with a slug made from it on first save (brands, merchants)."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=220, unique=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self.slug:
            self.slug = _unique_slug(type(self), self.name)
        super().save(*args, **kwargs)


class Brand(NamedModel):
    """A brand; ``key`` makes spellings that differ only in case, spacing, punctuation or accents one brand."""

    key = models.CharField(
        max_length=200, unique=True, editable=False,
        help_text="The name without case, spaces, punctuation or accents (shop.cleaning.brand_key): one brand per key.",
    )

    def save(self, *args, **kwargs):
        self.key = brand_key(self.name) or self.name.strip()  # a name of symbols only is its own key
        super().save(*args, **kwargs)


class Category(models.Model):
    """A node of the category tree; ``path`` is the full path, e.g. ``Home Furnishing > Curtains``."""

    PATH_SEPARATOR = " > "

    name = models.CharField(max_length=200)
    parent = models.ForeignKey("self", null=True, blank=True, related_name="children", on_delete=models.PROTECT)
    path = models.CharField(max_length=1000, unique=True, editable=False)
    slug = models.SlugField(max_length=255, unique=True)

    class Meta:
        ordering = ["path"]
        verbose_name_plural = "categories"
        constraints = [models.UniqueConstraint(fields=["parent", "name"], name="unique_category_name_per_parent")]

    def __str__(self) -> str:
        return self.path

    def save(self, *args, **kwargs):
        self.path = f"{self.parent.path}{self.PATH_SEPARATOR}{self.name}" if self.parent else self.name
        if not self.slug:
            self.slug = _unique_slug(Category, self.path)
        super().save(*args, **kwargs)

    def ancestors_and_self(self) -> list[Category]:
        """Root first."""
        chain, node = [], self
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain[::-1]

    @property
    def root(self) -> Category:
        return self.ancestors_and_self()[0]


class Merchant(NamedModel):
    """A seller who owns products. Its ``staff`` may add and edit only the merchant's own products."""

    staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="merchants",
        help_text="Users who manage this merchant's products (in the admin and through the API).",
    )
    created_at = models.DateTimeField(auto_now_add=True)


class IndexState(models.TextChoices):
    PENDING = "pending", "Pending"
    INDEXED = "indexed", "Indexed"
    FAILED = "failed", "Failed"


class Product(models.Model):
    """A product a shopper can find. Prices are in ``currency`` (INR for the Flipkart catalog)."""

    external_id = models.CharField(
        max_length=100, unique=True, null=True, blank=True,
        help_text="The id in the source catalog (e.g. Flipkart uniq_id); imports are idempotent on it.",
    )
    merchant = models.ForeignKey(
        Merchant, null=True, blank=True, related_name="products", on_delete=models.PROTECT,
        help_text="Who sells it; empty for products imported from a catalog (only superusers edit those).",
    )
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    brand = models.ForeignKey(Brand, null=True, blank=True, related_name="products", on_delete=models.SET_NULL)
    category = models.ForeignKey(Category, null=True, blank=True, related_name="products", on_delete=models.SET_NULL)
    price = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))],
        help_text="Selling price; empty when the merchant has not set one.",
    )
    list_price = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))],
        help_text="Price before discount (MRP).",
    )
    currency = models.CharField(max_length=3, default="INR")
    rating = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(5)])
    specifications = models.JSONField(default=dict, blank=True)
    source_row = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="The row as it came from the catalog file or bulk upload, before cleaning (empty for products typed in).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    index_state = models.CharField(max_length=10, choices=IndexState.choices, default=IndexState.PENDING, db_index=True)
    index_error = models.TextField(blank=True, help_text="Why the last indexing attempt failed, if it did.")
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["index_state", "updated_at"])]

    def __str__(self) -> str:
        return self.title

    @property
    def primary_image(self) -> ProductImage | None:
        images = list(self.images.all())
        return next((i for i in images if i.is_primary), images[0] if images else None)

    @property
    def discount_percent(self) -> int | None:
        if self.price and self.list_price and self.list_price > self.price:
            return int(round(100 * (1 - self.price / self.list_price)))
        return None


def product_image_path(instance: ProductImage, filename: str) -> str:
    """Storage path for a photo: never derived from the uploaded name (only a random id)."""
    return f"products/{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}.jpg"


class ProductImage(models.Model):
    product = models.ForeignKey(Product, related_name="images", on_delete=models.CASCADE)
    image = models.ImageField(upload_to=product_image_path, width_field="width", height_field="height")
    width = models.PositiveIntegerField(null=True, blank=True, editable=False)
    height = models.PositiveIntegerField(null=True, blank=True, editable=False)
    alt_text = models.CharField(max_length=300, blank=True)
    position = models.PositiveIntegerField(default=0)
    is_primary = models.BooleanField(default=False)
    source_name = models.CharField(max_length=255, blank=True, help_text="Original file name, for the merchant's reference.")

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["product"], condition=models.Q(is_primary=True), name="one_primary_image_per_product"
            )
        ]

    def __str__(self) -> str:
        return f"Photo {self.position} of {self.product_id}"


def _unique_slug(model: type[models.Model], text: str) -> str:
    base = slugify(text)[:200] or "item"
    slug, n = base, 1
    while model.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


class StateEntry(models.Model):
    """One entry of the ``state`` cache when it is kept in the database (``shop.state.StateCache``).

    The columns are those of Django's database cache table (``createcachetable``); the model
    only lets ``migrate`` create the table, so a deployment needs no extra command.
    """

    cache_key = models.CharField(max_length=255, primary_key=True)
    value = models.TextField()
    expires = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "shop_state_cache"
        verbose_name = "rate-limit or photo-token entry"
        verbose_name_plural = "rate-limit and photo-token entries"

    def __str__(self) -> str:
        return self.cache_key
