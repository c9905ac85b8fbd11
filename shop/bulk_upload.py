"""A merchant's bulk upload: a CSV of products plus a zip of their photos, with a report per row.

Each row is validated with the API's rules (:class:`shop.api.serializers.ProductWriteSerializer`),
its photo decoded with ``mlmodels.images.open_image``, then written in its own transaction: a
row that fails (bad price, no title, a photo missing from the zip or corrupt, an external id
owned by another merchant) is reported and leaves nothing behind, while the other rows go
through. The written products are indexed by the same Celery task as every other save,
enqueued once after the upload in batches.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mlmodels.images import ImageRejected
from shop.api.serializers import ProductWriteSerializer
from shop.merchant_services import product_create, product_update
from shop.models import IndexState, Merchant, Product
from shop.services import photo_open_for_storage, product_image_add
from shop.signals import indexing_deferred

#: Columns understood in the CSV header (others are reported, not silently ignored).
COLUMNS = ("external_id", "title", "description", "brand", "category", "price", "list_price", "currency", "image")
REQUIRED_COLUMNS = ("external_id", "title")
#: Most rows in one upload: large enough for a merchant's catalog, small enough that the
#: per-row report stays readable and the request ends within a minute on CPU.
MAX_ROWS = 2000
MAX_CSV_BYTES = 5 * 1024 * 1024
#: Most files in the photo zip (a zip with more entries than rows' photos is refused early).
MAX_ZIP_MEMBERS = 5000
#: The reason given for a row that failed for a reason of ours (the details go to the log).
ROW_FAILED = "This row could not be saved because of an error on our side; nothing of it was kept. Upload it again later."

logger = logging.getLogger(__name__)


class BulkUploadRejected(ValueError):
    """The upload as a whole cannot be read (not a CSV, no header, too many rows, a bad zip)."""

    def __init__(self, reason: str, field: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass
class RowResult:
    row: int
    external_id: str
    status: str  # "created", "updated" or "error"
    product_id: int | None = None
    field: str = ""
    error: str = ""


@dataclass
class BulkReport:
    rows: list[RowResult] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(r.status == "created" for r in self.rows)

    @property
    def updated(self) -> int:
        return sum(r.status == "updated" for r in self.rows)

    @property
    def errors(self) -> int:
        return sum(r.status == "error" for r in self.rows)

    def as_dict(self) -> dict:
        return {"created": self.created, "updated": self.updated, "errors": self.errors, "rows": [asdict(r) for r in self.rows]}


class _RowError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _read_csv(data: bytes) -> list[dict[str, str]]:
    if len(data) > MAX_CSV_BYTES:
        raise BulkUploadRejected(f"The CSV is {len(data) / 1048576:.1f} MB; the limit is {MAX_CSV_BYTES // 1048576} MB.", "csv")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BulkUploadRejected("The CSV is not UTF-8 text; export it as 'CSV UTF-8'.", "csv") from None
    if "\x00" in text:
        raise BulkUploadRejected("The CSV holds binary data; upload a text CSV file.", "csv")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise BulkUploadRejected(
            f"The CSV header lacks {', '.join(missing)}; expected columns: {', '.join(COLUMNS)}.", "csv"
        )
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise BulkUploadRejected(f"Unknown CSV columns: {', '.join(unknown)[:200]}; expected: {', '.join(COLUMNS)}.", "csv")
    reader.fieldnames = header
    rows = []
    try:
        for record in reader:
            if len(rows) >= MAX_ROWS:
                raise BulkUploadRejected(f"The CSV has more than {MAX_ROWS} rows; split it into several uploads.", "csv")
            rows.append({k: (v or "").strip() if isinstance(v, str) else "" for k, v in record.items() if k is not None})
    except csv.Error:
        raise BulkUploadRejected(
            f"The CSV cannot be read at line {reader.line_num}: a quote is not closed or a cell is far too long. "
            "Check that line in your spreadsheet and export the file again as 'CSV UTF-8'.", "csv",
        ) from None
    return rows


def _open_zip(source: BinaryIO | None) -> zipfile.ZipFile | None:
    if source is None:
        return None
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise BulkUploadRejected("The photos file is not a zip archive.", "images") from None
    if len(archive.infolist()) > MAX_ZIP_MEMBERS:
        raise BulkUploadRejected(f"The zip holds more than {MAX_ZIP_MEMBERS} files.", "images")
    return archive


def _zip_index(archive: zipfile.ZipFile | None) -> dict[str, zipfile.ZipInfo]:
    """Photo name -> entry, by full path and by base name. Names are only looked up, never used as paths."""
    index: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist() if archive else []:
        if info.is_dir():
            continue
        index.setdefault(info.filename, info)
        index.setdefault(PurePosixPath(info.filename).name, info)
    return index


def _photo_bytes(name: str, archive: zipfile.ZipFile | None, index: dict[str, zipfile.ZipInfo]) -> bytes:
    if archive is None:
        raise _RowError("image", f"The row names the photo {name!r} but no images zip was uploaded.")
    info = index.get(name) or index.get(PurePosixPath(name).name)
    if info is None:
        raise _RowError("image", f"The photo {name!r} is not in the images zip.")
    if info.file_size > settings.MAX_IMAGE_BYTES:
        raise _RowError("image", f"The photo {name!r} is {info.file_size / 1048576:.1f} MB; the limit is {settings.MAX_IMAGE_BYTES // 1048576} MB.")
    try:
        with archive.open(info) as fh:
            data = fh.read(settings.MAX_IMAGE_BYTES + 1)  # bounded even if the header lies (zip bomb)
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError):
        raise _RowError(
            "image", f"The photo {name!r} is damaged inside the zip (or the zip is password-protected); zip the photos again and upload them.",
        ) from None
    return data


def _validated(values: dict[str, str], instance: Product | None, request) -> dict:
    data = {k: v for k, v in values.items() if k != "image" and (v != "" or k in ("title", "external_id"))}
    serializer = ProductWriteSerializer(instance=instance, data=data, partial=False, context={"request": request})
    if not serializer.is_valid():
        name, errors = next(iter(serializer.errors.items()))
        message = errors[0] if isinstance(errors, list) else next(iter(errors.values()))[0]
        raise _RowError("" if name == "non_field_errors" else name, f"{name}: {message}" if name != "non_field_errors" else str(message))
    return dict(serializer.validated_data)


def _write_row(values: dict[str, str], merchant: Merchant | None, photo: bytes | None, request) -> tuple[str, Product]:
    external_id = values.get("external_id", "")
    if not external_id:
        raise _RowError("external_id", "external_id is empty; every row needs your id so that a re-upload updates it.")
    existing = Product.objects.filter(external_id=external_id).first()
    if existing is not None and existing.merchant_id != (merchant.pk if merchant else None):
        raise _RowError("external_id", f"The external id {external_id!r} belongs to a product of another merchant or of the imported catalog.")
    attrs = _validated(values, existing, request)
    attrs.pop("merchant", None)
    attrs["source_row"] = dict(values)  # the row as uploaded, before cleaning
    try:
        if photo is not None:
            photo_open_for_storage(photo)  # refused before anything is written
        with transaction.atomic():
            if existing is None:
                product, outcome = product_create(merchant=merchant, **attrs), "created"
            else:
                product, outcome = product_update(product=existing, **attrs), "updated"
                Product.objects.filter(pk=product.pk).update(index_state=IndexState.PENDING, updated_at=timezone.now())
            if photo is not None:
                product.images.all().delete()
                product_image_add(product=product, data=photo, source_name=PurePosixPath(values["image"]).name, make_primary=True)
    except ImageRejected as exc:
        raise _RowError("image", f"The photo {values.get('image')!r} was refused: {exc.reason}") from None
    return outcome, product


def products_bulk_upload(*, merchant: Merchant | None, csv_data: bytes, images_zip: BinaryIO | None = None, request=None) -> BulkReport:
    """Create or update ``merchant``'s products from a CSV (and a zip of photos), row by row.

    Args:
        merchant: owner of every row's product (``None``: catalog products, superusers only). A
            row whose ``external_id`` belongs to another owner is refused.
        csv_data: the CSV file's bytes (UTF-8, header line first; columns :data:`COLUMNS`).
        images_zip: the zip holding the photos named in the ``image`` column, or ``None``.
        request: the API request (passed to the row validation for messages about the user).

    Returns:
        One :class:`RowResult` per data row, numbered as a spreadsheet shows it (header = row 1).

    Raises:
        BulkUploadRejected: the CSV or the zip cannot be read as a whole; nothing is written.
    """
    rows = _read_csv(csv_data)
    archive = _open_zip(images_zip)
    index = _zip_index(archive)
    report = BulkReport()
    written: list[int] = []
    first_seen: dict[str, int] = {}
    with indexing_deferred():
        for number, values in enumerate(rows, start=2):
            external_id = values.get("external_id", "")
            if external_id in first_seen:
                report.rows.append(RowResult(
                    number, external_id, "error", field="external_id",
                    error=f"The external id {external_id!r} already appeared at row {first_seen[external_id]}; this row was skipped.",
                ))
                continue
            if external_id:
                first_seen[external_id] = number
            try:
                photo = _photo_bytes(values["image"], archive, index) if values.get("image") else None
                outcome, product = _write_row(values, merchant, photo, request)
            except _RowError as exc:
                report.rows.append(RowResult(number, external_id, "error", field=exc.field, error=exc.message))
                continue
            except Exception:  # noqa: BLE001 - one row's bug must not lose the report of the others
                logger.exception("Bulk upload row %s (%r) could not be written", number, external_id)
                report.rows.append(RowResult(number, external_id, "error", error=ROW_FAILED))
                continue
            report.rows.append(RowResult(number, external_id, outcome, product_id=product.pk))
            written.append(product.pk)
    if written:
        from workers.tasks import enqueue_index  # late: loads the Celery app, only when a batch is enqueued

        transaction.on_commit(lambda: enqueue_index(written))
    return report
