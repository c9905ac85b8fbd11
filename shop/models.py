"""Catalog domain: brands, a category tree, products and their photos."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import slugify

from shop.cleaning import brand_key

#: Ids per ``UPDATE ... WHERE id IN (...)``, below SQLite's 32,766 bound variables.
ID_CHUNK = 10_000


class NaturalKeyManager(models.Manager):
    """``get_by_natural_key`` on the model's unique ``natural_key_field``, so fixtures
    (``fixtures/``) name rows instead of numbering them and load idempotently beside an
    imported catalog."""

    def get_by_natural_key(self, value: str):
        return self.get(**{self.model.natural_key_field: value})


class NamedModel(models.Model):
    """A unique name with a slug made from it on first save (brands, merchants)."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=220, unique=True)

    objects = NaturalKeyManager()
    natural_key_field = "name"

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def natural_key(self) -> tuple[str]:
        return (self.name,)

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
    """A node of the category tree; ``path`` is the full path, e.g. ``Home Furnishing > Curtains``.

    Renaming a node or moving it under another parent rewrites the ``path`` of every node below
    it in the same transaction; ``previous_path`` then holds the path before the save (``None``
    for a new node), so ``shop.signals`` can re-index the products of the subtree.
    """

    PATH_SEPARATOR = " > "

    name = models.CharField(max_length=200)
    parent = models.ForeignKey("self", null=True, blank=True, related_name="children", on_delete=models.PROTECT)
    path = models.CharField(max_length=1000, unique=True, editable=False)
    slug = models.SlugField(max_length=255, unique=True)

    objects = NaturalKeyManager()
    natural_key_field = "path"

    class Meta:
        ordering = ["path"]
        verbose_name_plural = "categories"
        constraints = [models.UniqueConstraint(fields=["parent", "name"], name="unique_category_name_per_parent")]

    def __str__(self) -> str:
        return self.path

    def natural_key(self) -> tuple[str]:
        return (self.path,)

    def clean(self) -> None:
        super().clean()
        self._check_parent()

    def _check_parent(self) -> None:
        if self.pk is not None and self.parent_id is not None and any(c.pk == self.pk for c in self.parent.ancestors_and_self()):
            raise ValidationError({"parent": f"{self.parent.path!r} is inside {self.name!r}; a category cannot be moved below itself."})

    def save(self, *args, **kwargs):
        """Save, and rewrite the paths below this node when its own path changed.

        Raises:
            ValidationError: the new parent is this node or one of its descendants.
        """
        self._check_parent()
        self.previous_path = None
        if not self._state.adding and self.pk is not None:
            self.previous_path = Category.objects.filter(pk=self.pk).values_list("path", flat=True).first()
        self.path = f"{self.parent.path}{self.PATH_SEPARATOR}{self.name}" if self.parent else self.name
        if not self.slug:
            self.slug = _unique_slug(Category, self.path)
        with transaction.atomic():
            super().save(*args, **kwargs)
            if self.previous_path not in (None, self.path):
                self._repath_descendants()

    def _repath_descendants(self) -> None:
        """Give every node below this one the path under this node's new path (one query per level)."""
        level = {self.pk: self.path}
        while level:
            children = list(Category.objects.filter(parent_id__in=list(level)).only("pk", "name", "parent_id"))
            for child in children:
                child.path = f"{level[child.parent_id]}{self.PATH_SEPARATOR}{child.name}"
            Category.objects.bulk_update(children, ["path"], batch_size=500)
            level = {c.pk: c.path for c in children}

    def subtree_ids(self) -> list[int]:
        """Ids of this node and every node below it (walks ``parent`` links, one query per level)."""
        ids, level = [self.pk], [self.pk]
        while level:
            level = list(Category.objects.filter(parent_id__in=level).values_list("pk", flat=True))
            ids += level
        return ids

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
    index_version = models.PositiveBigIntegerField(
        default=0, editable=False,
        help_text="Raised by one (F() + 1) on every change that needs re-indexing; the indexer marks a product "
                  "indexed only if it is still the version it read (compare-and-set).",
    )

    objects = NaturalKeyManager()
    natural_key_field = "external_id"

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["index_state", "updated_at"])]

    def __str__(self) -> str:
        return self.title

    def natural_key(self) -> tuple[str | None]:
        return (self.external_id,)

    @classmethod
    def mark_pending(cls, product_ids: Iterable[int], *, clear_error: bool = False) -> list[int]:
        """Mark products pending and raise their ``index_version`` by one (``F() + 1``, in the database).

        Enqueues nothing: ``shop.signals.products_mark_pending`` also enqueues after the commit.
        Returns the ids, in the order given, without repeats.
        """
        ids = list(dict.fromkeys(int(i) for i in product_ids))
        values = {"index_state": IndexState.PENDING, "index_version": models.F("index_version") + 1, "updated_at": timezone.now()}
        if clear_error:
            values["index_error"] = ""
        for start in range(0, len(ids), ID_CHUNK):
            cls.objects.filter(pk__in=ids[start:start + ID_CHUNK]).update(**values)
        return ids

    def save(self, *args, **kwargs):
        # ``index_version`` is only ever raised in the database (``shop.signals``): a save of a
        # row read earlier must not write back the value it read, or an indexing task that saw
        # that value would take a stale document for the current one.
        if not self._state.adding and self.pk is not None and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "index_version"]
        super().save(*args, **kwargs)

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
