"""Readers for the catalog formats in ``CATALOG_DIR`` (see that folder's README).

Each reader yields :class:`ImportRow` objects; a row that cannot become a product carries a
``skip_reason`` instead of being dropped silently. Readers only map columns: the text is
cleaned when the row is saved (``shop.cleaning``, called by ``shop.services.catalog_import``),
and ``source`` keeps the row as it was in the file.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

FORMATS = ("flipkart", "fashion", "grocery")
#: Deepest category level kept from Flipkart's trees; deeper levels are mostly product names.
MAX_CATEGORY_DEPTH = 4
#: The first columns of the grocery set's classes.csv (it has a header row, skipped).
GROCERY_COLUMNS = ("class_name", "class_id", "coarse_class_name", "coarse_class_id", "iconic_image_path", "product_description_path")


class CatalogFormatError(ValueError):
    """The folder does not hold the expected files; the message names the file expected."""


@dataclass
class ImportRow:
    external_id: str
    title: str
    description: str = ""
    brand: str = ""
    category_path: list[str] = field(default_factory=list)
    price: Decimal | None = None
    list_price: Decimal | None = None
    rating: float | None = None
    specifications: dict = field(default_factory=dict)
    image_path: Path | None = None
    skip_reason: str = ""
    #: The row as read from the file (column -> text), kept on the product as ``source_row``.
    source: dict = field(default_factory=dict)


def read_catalog(fmt: str, folder: Path) -> Iterator[ImportRow]:
    """Rows of the catalog in ``folder`` in format ``fmt`` (one of :data:`FORMATS`).

    Raises:
        CatalogFormatError: unknown format, or the expected file is missing.
    """
    readers = {"flipkart": _flipkart, "fashion": _fashion, "grocery": _grocery}
    if fmt not in readers:
        raise CatalogFormatError(f"Unknown catalog format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return readers[fmt](Path(folder))


def _require(path: Path) -> Path:
    if not path.is_file():
        raise CatalogFormatError(f"Expected the file {path}, which does not exist.")
    return path


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None
    return value if value.is_finite() and value >= 0 else None


def _clean_category(parts: list[str]) -> list[str]:
    out = []
    for part in parts:
        part = re.sub(r"\s+", " ", part.replace(">", " ")).strip()
        if not part or part.endswith("..."):
            break
        out.append(part[:200])
    return out[:MAX_CATEGORY_DEPTH]


def _flipkart_specs(text: str) -> dict:
    try:
        data = json.loads(text.replace("=>", ":")) if text else {}
    except json.JSONDecodeError:
        return {}
    items = data.get("product_specification") or []
    if isinstance(items, dict):
        items = [items]
    return {str(i["key"]): str(i["value"]) for i in items if isinstance(i, dict) and "key" in i and "value" in i}


def _brand_from_category(title: str, path: list[str]) -> str:
    """The brand a Flipkart category leaf names, for rows whose ``brand`` column is empty.

    Flipkart files a branded product under a leaf ``<brand> <parent>`` below ``<parent>``
    (``Watches > Wrist Watches > Maserati Time Wrist Watches``); the leaf's leading words are the
    brand when the title starts with them too. On the demo catalog this names the brand of all 338
    rows without one, and agrees with the ``brand`` column on every one of the 568 rows that have
    both. Returns ``""`` when no leaf has that shape.
    """
    lowered = title.lower()
    for depth in range(len(path) - 1, 1, -1):
        words, parent = path[depth].split(), path[depth - 1].lower()
        for k in range(1, len(words)):
            brand = " ".join(words[:k])
            if " ".join(words[k:]).lower() == parent and lowered.startswith(brand.lower() + " "):
                return brand
    return ""


def _flipkart(folder: Path) -> Iterator[ImportRow]:
    with _require(folder / "products.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            try:
                tree = json.loads(rec.get("product_category_tree") or "[]")
            except json.JSONDecodeError:
                tree = []
            specs = _flipkart_specs(rec.get("product_specifications", ""))
            rating = rec.get("product_rating", "")
            title = (rec.get("product_name") or "").strip()
            category_path = _clean_category(tree[0].split(">>")) if tree else []
            row = ImportRow(
                external_id=(rec.get("uniq_id") or "").strip(),
                title=title,
                description=(rec.get("description") or "").strip(),
                brand=(rec.get("brand") or "").strip() or specs.get("Brand", "").strip() or _brand_from_category(title, category_path),
                category_path=category_path,
                price=_decimal(rec.get("discounted_price") or "") or _decimal(rec.get("retail_price") or ""),
                list_price=_decimal(rec.get("retail_price") or ""),
                rating=float(rating) if re.fullmatch(r"\d+(\.\d+)?", rating.strip()) else None,
                specifications=specs,
                source=dict(rec),
            )
            image = (rec.get("image") or "").strip()
            row.image_path = folder / "images" / image if image else None
            row.skip_reason = _common_skip(row, price_required=True)
            yield row


def _fashion(folder: Path) -> Iterator[ImportRow]:
    with _require(folder / "styles.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            attrs = {k: (rec.get(k) or "").strip() for k in ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage")}
            row = ImportRow(
                external_id=(rec.get("id") or "").strip(),
                title=(rec.get("productDisplayName") or "").strip(),
                description=" ".join(v for k, v in attrs.items() if k in ("gender", "baseColour", "articleType", "usage") and v),
                category_path=_clean_category([attrs["masterCategory"], attrs["subCategory"], attrs["articleType"]]),
                specifications={k: v for k, v in attrs.items() if v},
                image_path=folder / "images" / f"{(rec.get('id') or '').strip()}.jpg",
                source=dict(rec),
            )
            row.skip_reason = _common_skip(row, price_required=False)
            yield row


def _grocery(folder: Path) -> Iterator[ImportRow]:
    with _require(folder / "classes.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.reader(fh):
            if not rec or rec[0].startswith("Class Name"):
                continue
            name, class_id, coarse, _, iconic, desc_path = (c.strip() for c in rec[:6])
            top = iconic.strip("/").split("/")[1] if iconic.count("/") > 2 else ""
            desc_file = folder / desc_path.lstrip("/")
            row = ImportRow(
                external_id=name,
                title=name.replace("-", " ") if coarse.lower() in name.lower() else f"{name.replace('-', ' ')} {coarse.replace('-', ' ')}",
                description=desc_file.read_text(encoding="utf-8", errors="replace").strip() if desc_file.is_file() else "",
                category_path=_clean_category([top, coarse.replace("-", " ")]),
                specifications={"class_id": class_id, "coarse_class": coarse},
                image_path=folder / iconic.lstrip("/"),
                source=dict(zip(GROCERY_COLUMNS, rec[:6], strict=False)),
            )
            row.skip_reason = _common_skip(row, price_required=False)
            yield row


def _common_skip(row: ImportRow, *, price_required: bool) -> str:
    if not row.external_id:
        return "no id"
    if not row.title:
        return "empty title"
    if price_required and row.price is None:
        return "empty price"
    if row.image_path is None or not row.image_path.is_file():
        return "missing photo"
    return ""
