"""Writes of the catalog: import rows from a catalog folder, attach photos."""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image

from mlmodels.images import DecodedImage, ImageRejected, open_image
from shop.brands import brand_for_name
from shop.cleaning import RULES, CleaningReport, product_values_clean
from shop.importers import ImportRow
from shop.models import Brand, Category, Product, ProductImage
from shop.signals import indexing_deferred
from shop.uploads import photo_limits

logger = logging.getLogger(__name__)

#: JPEG quality for re-encoded photos: visually lossless for product shots at a third of the size of q=95.
JPEG_QUALITY = 88


@dataclass
class ImportSummary:
    """What an import did. ``cleaned`` counts rows per cleaning rule (``shop.cleaning.RULES``),
    ``cleaning`` the values each rule changed, with examples; ``cleaned_examples`` holds up to
    five external ids per rule."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    product_ids: list[int] = field(default_factory=list)
    cleaned: Counter = field(default_factory=Counter)
    cleaned_examples: dict[str, list[str]] = field(default_factory=dict)
    cleaning: CleaningReport = field(default_factory=CleaningReport)

    def skip(self, reason: str, external_id: str) -> None:
        self.skipped[reason] += 1
        self.skipped_examples.setdefault(reason, [])
        if len(self.skipped_examples[reason]) < 5:
            self.skipped_examples[reason].append(external_id or "(no id)")

    def clean(self, report: CleaningReport, external_id: str) -> None:
        """Count one row's cleaning: one row per rule that changed it."""
        self.cleaning.merge(report)
        for rule in report.rules:
            self.cleaned[rule] += 1
            examples = self.cleaned_examples.setdefault(rule, [])
            if len(examples) < 5:
                examples.append(external_id)

    def cleaned_rows(self) -> list[tuple[str, str, int]]:
        """``(rule, description, rows)`` for every rule, in ``RULES`` order (zero rows included)."""
        return [(rule, text, self.cleaned[rule]) for rule, text in RULES.items()]


def category_for_path(parts: list[str], cache: dict[tuple[str, ...], Category] | None = None) -> Category | None:
    """The category at ``parts`` (root first), creating missing nodes."""
    cache = {} if cache is None else cache
    parent = None
    for depth in range(1, len(parts) + 1):
        key = tuple(parts[:depth])
        if key not in cache:
            cache[key], _ = Category.objects.get_or_create(parent=parent, name=parts[depth - 1])
        parent = cache[key]
    return parent


def photo_open_for_storage(source) -> DecodedImage:
    """Decode a photo within the limits in settings, at most ``PHOTO_STORED_MAX_SIDE`` px on its longer side.

    Raises:
        ImageRejected: the photo is unusable (see ``mlmodels.images.open_image``).
    """
    return open_image(source, **photo_limits(), fit=settings.PHOTO_STORED_MAX_SIDE)


def encode_for_storage(decoded: DecodedImage) -> bytes:
    """Re-encode a decoded photo as a metadata-free JPEG (EXIF orientation already applied).

    The image is shrunk to ``PHOTO_STORED_MAX_SIDE`` px on its longer side first if it is larger
    (a photo decoded without ``fit``), so the file stays small and within JPEG's 65,500 px.

    Raises:
        ImageRejected: the encoder refused the pixels (nothing is stored).
    """
    image = decoded.image
    if max(image.size) > settings.PHOTO_STORED_MAX_SIDE:
        image = image.copy()
        image.thumbnail((settings.PHOTO_STORED_MAX_SIDE, settings.PHOTO_STORED_MAX_SIDE), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    try:
        image.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    except (OSError, ValueError):
        logger.exception("A decoded photo (%sx%s px) could not be saved as JPEG", *image.size)
        raise ImageRejected("The photo could not be saved as a JPEG. Save it again in another program, or choose another one.") from None
    return buf.getvalue()


def product_image_add(*, product: Product, data: bytes, source_name: str = "", make_primary: bool | None = None) -> ProductImage:
    """Validate a photo, store it re-encoded (JPEG, at most ``PHOTO_STORED_MAX_SIDE`` px) under a random name, attach it to ``product``.

    Raises:
        ImageRejected: the photo is unusable (see ``mlmodels.images.open_image``); nothing is stored.
    """
    decoded = photo_open_for_storage(data)
    stored = encode_for_storage(decoded)
    primary = not product.images.filter(is_primary=True).exists() if make_primary is None else make_primary
    with transaction.atomic():
        if primary:
            product.images.filter(is_primary=True).update(is_primary=False)
        image = ProductImage(product=product, is_primary=primary, position=product.images.count(), source_name=source_name[:255])
        image.image.save("photo.jpg", ContentFile(stored), save=False)
        image.save()
    return image


def catalog_import(rows: Iterable[ImportRow], *, progress: Callable[[], None] | None = None) -> ImportSummary:
    """Create or update products from ``rows``, idempotent on ``external_id``.

    Saves do not enqueue indexing one by one: the caller indexes ``summary.product_ids`` in
    batches. Rows with a ``skip_reason`` or an unusable photo are counted in the summary; every
    row's text is cleaned (``shop.cleaning``) and the rules that changed it are counted in
    ``summary.cleaned``; the row as read is kept in ``Product.source_row``.
    """
    summary = ImportSummary()
    brands: dict[str, Brand] = {}
    categories: dict[tuple[str, ...], Category] = {}
    seen: set[str] = set()
    with indexing_deferred():
        for row in rows:
            if progress:
                progress()
            if row.skip_reason:
                summary.skip(row.skip_reason, row.external_id)
                continue
            if row.external_id in seen:
                summary.skip("duplicate id in the file", row.external_id)
                continue
            seen.add(row.external_id)
            try:
                photo = photo_open_for_storage(row.image_path)
            except ImageRejected as exc:
                summary.skip(f"unusable photo ({exc.reason})", row.external_id)
                continue
            values, report = product_values_clean({
                "title": row.title, "description": row.description, "brand": row.brand, "specifications": row.specifications,
            })
            if not values["title"]:
                summary.skip("empty title", row.external_id)
                continue
            with transaction.atomic():
                outcome, product = _upsert(row, values, report, brands, categories)
                if not product.images.filter(source_name=row.image_path.name).exists():
                    product.images.all().delete()
                    image = ProductImage(product=product, is_primary=True, position=0, source_name=row.image_path.name)
                    image.image.save("photo.jpg", ContentFile(_stored_bytes(row, photo)), save=False)
                    image.save()
                    outcome = "updated" if outcome == "unchanged" else outcome
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            summary.clean(report, row.external_id)
            summary.product_ids.append(product.pk)
    return summary


def _stored_bytes(row: ImportRow, photo: DecodedImage) -> bytes:
    # Catalog JPEGs were stripped of metadata upstream: keep their bytes (no generation loss)
    # unless they are larger than a stored photo may be.
    if photo.format == "JPEG" and row.image_path is not None and max(photo.width, photo.height) <= settings.PHOTO_STORED_MAX_SIDE:
        return row.image_path.read_bytes()
    return encode_for_storage(photo)


def _upsert(row: ImportRow, clean: dict, report: CleaningReport, brands: dict[str, Brand], categories: dict) -> tuple[str, Product]:
    values = {
        "title": clean["title"][:500],
        "description": clean["description"],
        "brand": brand_for_name(clean["brand"], report, brands),
        "category": category_for_path(row.category_path, categories),
        "price": row.price,
        "list_price": row.list_price,
        "rating": row.rating,
        "specifications": clean["specifications"],
        "source_row": row.source,
    }
    product = Product.objects.filter(external_id=row.external_id).first()
    if product is None:
        return "created", Product.objects.create(external_id=row.external_id, **values)
    changed = any(getattr(product, k) != v for k, v in values.items())
    if changed:
        for k, v in values.items():
            setattr(product, k, v)
        product.save()
        return "updated", product
    return "unchanged", product
