"""Writes of the search app: embed products and put them in (or take them out of) the index.

Failures are sorted in two kinds. *Transient* ones (index locked, engine unreachable, database
busy) propagate so the Celery task retries with backoff. *Permanent* ones (a photo that cannot
be decoded) are recorded on the product (``index_state = failed`` with the reason) and the
product is still indexed by its text, so it stays findable while the merchant fixes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Prefetch
from django.utils import timezone

from mlmodels.fusion import FusionSpace, fuse
from mlmodels.images import ImageRejected, open_image
from mlmodels.types import DECODE_FIT, ImageFeatures
from search.backends import get_backend
from search.backends.base import BaseSearchBackend, DocumentsRejected
from search.documents import document_text, to_search_document
from search.embedding import encoders, encoding, spaces
from search.models import ProductEmbedding, ProductVector
from shop.models import IndexState, Product, ProductImage
from shop.uploads import photo_limits

logger = logging.getLogger(__name__)


#: Ids per ``IN (...)`` query, below SQLite's 32,766 bound variables.
ID_CHUNK = 10_000
#: Tries of the state marks that follow an engine write (the write is done; only the marks remain).
STATE_MARK_TRIES = 5


@dataclass
class IndexReport:
    """What a batch of indexing did.

    Attributes:
        indexed: ids written and marked indexed.
        failed: id -> reason, for products marked failed (a refused photo: indexed by text only;
            refused by the engine, listed in ``rejected`` too: not in the index).
        missing: ids that no longer existed when read (removed from the index).
        seen: id -> ``Product.index_version`` read with the row that was written.
        rejected: ids the engine refused (not in the index).
        changed: ids changed while being indexed; left pending, to be indexed again.
        vanished: ids deleted while being indexed.
        space_version: the fusion space the fused vectors were made in (``None``: none written).
    """

    indexed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)
    rejected: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)
    space_version: str | None = None


def _products(ids: Iterable[int]):
    return (
        Product.objects.filter(pk__in=list(ids))
        .select_related("brand", "category")
        .prefetch_related(Prefetch("images", queryset=ProductImage.objects.order_by("-is_primary", "position", "id")))
        .order_by("pk")
    )


def products_embed(
    products: Sequence[Product], *, force: bool = False, space: FusionSpace | None = None,
) -> tuple[dict[int, ProductEmbedding], dict[int, str]]:
    """Compute (or reuse) embeddings for ``products`` and save them.

    Text is re-encoded only when it (or ``TEXT_ENCODER``) changed, a photo only when its bytes (or
    ``IMAGE_ENCODER``) changed, unless ``force``; the fused vector is always recomputed, in ``space``
    (default: the active space). Vectors of ``ADDITIONAL_TEXT_ENCODERS`` are kept up to date in
    :class:`~search.models.ProductVector` the same way (:func:`product_vectors_embed`).
    Returns (product id -> embedding, product id -> reason its photo was not used).
    """
    space = space or encoding.get_space()
    text_spec, image_spec = encoders.text_spec(), encoders.image_spec()
    existing = {e.product_id: e for e in ProductEmbedding.objects.filter(product__in=[p.pk for p in products])}
    texts = {p.pk: document_text(p) for p in products}
    text_hashes = {pid: encoding.source_hash(text_spec, text) for pid, text in texts.items()}
    photo_errors: dict[int, str] = {}

    to_text = [p for p in products if force or p.pk not in existing or existing[p.pk].text_hash != text_hashes[p.pk]]
    text_vecs = dict(zip([p.pk for p in to_text], encoders.text_encoder().encode_document([texts[p.pk] for p in to_text]), strict=True))

    photos: dict[int, tuple[str, object]] = {}
    for p in products:
        img = p.primary_image
        if img is None:
            continue
        try:
            with img.image.open("rb") as fh:
                raw = fh.read(settings.MAX_IMAGE_BYTES + 1)
            digest = encoding.source_hash(image_spec, raw)
            if not force and p.pk in existing and existing[p.pk].image_hash == digest and existing[p.pk].image_features is not None:
                continue
            photos[p.pk] = (digest, open_image(raw, **photo_limits(), fit=DECODE_FIT).image)
        except ImageRejected as exc:
            photo_errors[p.pk] = f"Photo {img.source_name or img.image.name!r} was not used: {exc.reason}"
        except (FileNotFoundError, OSError):
            logger.exception("Photo %s of product %s cannot be read from storage", img.image.name, p.pk)
            photo_errors[p.pk] = f"Photo {img.source_name or img.image.name!r} is missing from the photo storage; upload it again."
    feats = encoders.image_encoder().encode([im for _, im in photos.values()]) if photos else None
    photo_rows = {pid: i for i, pid in enumerate(photos)}

    w_text, w_image = encoding.fusion_weights()
    out: dict[int, ProductEmbedding] = {}
    for p in products:
        emb = existing.get(p.pk) or ProductEmbedding(product=p)
        if p.pk in text_vecs:
            emb.text_vector = ProductEmbedding.pack(text_vecs[p.pk])
            emb.text_hash = text_hashes[p.pk]
        if p.pk in photo_rows:
            row = photo_rows[p.pk]
            emb.image_features = ProductEmbedding.pack(feats.features[row])
            emb.image_logits = ProductEmbedding.pack(feats.logits[row], np.float16)
            emb.image_hash = photos[p.pk][0]
        elif p.primary_image is None or p.pk in photo_errors:
            emb.image_features = emb.image_logits = None
            emb.image_hash = ""
        text_side = space.text(ProductEmbedding.unpack(emb.text_vector)[None, :])[0]
        image_side = None
        if emb.image_features is not None:
            stored = ImageFeatures(ProductEmbedding.unpack(emb.image_features)[None, :], ProductEmbedding.unpack(emb.image_logits, np.float16)[None, :])
            image_side = space.image(stored)[0]
        emb.fused_vector = ProductEmbedding.pack(fuse(text_side, image_side, text_weight=w_text, image_weight=w_image))
        emb.space_version = space.version
        emb.save()
        out[p.pk] = emb
    product_vectors_embed(products, texts, force=force)
    return out, photo_errors


def product_vectors_embed(products: Sequence[Product], texts: dict[int, str], *, force: bool = False) -> None:
    """Encode ``products``' document texts with each of ``ADDITIONAL_TEXT_ENCODERS`` and store the
    vectors, one :class:`~search.models.ProductVector` per (product, vector field).

    A text whose hash (text and encoder) is unchanged is not re-encoded unless ``force``.

    Args:
        products: the products.
        texts: product id -> its document text (:func:`search.documents.document_text`).
        force: re-encode every text.
    """
    for spec in encoders.additional_text_specs():
        stored = {v.product_id: v for v in ProductVector.objects.filter(product__in=[p.pk for p in products], field=spec.vector_field)}
        hashes = {p.pk: encoding.source_hash(spec, texts[p.pk]) for p in products}
        todo = [p.pk for p in products if force or p.pk not in stored or stored[p.pk].source_hash != hashes[p.pk]]
        if not todo:
            continue
        vectors = encoders.additional_text_encoder(spec).encode_document([texts[pid] for pid in todo])
        for pid, vector in zip(todo, vectors, strict=True):
            ProductVector.objects.update_or_create(
                product_id=pid, field=spec.vector_field,
                defaults={"encoder": spec.name, "vector": ProductEmbedding.pack(vector), "source_hash": hashes[pid]},
            )


def product_vectors(product_ids: Sequence[int]) -> dict[int, dict[str, np.ndarray]]:
    """Product id -> {vector field -> ``(dim,)`` float32 vector} of the ``ADDITIONAL_TEXT_ENCODERS`` fields in service."""
    fields = [spec.vector_field for spec in encoders.additional_text_specs()]
    out: dict[int, dict[str, np.ndarray]] = {}
    if fields:
        for pid, field_name, vector in ProductVector.objects.filter(product__in=list(product_ids), field__in=fields).values_list(
                "product_id", "field", "vector"):
            out.setdefault(pid, {})[field_name] = ProductEmbedding.unpack(vector)
    return out


def products_write(*, product_ids: Sequence[int], backend: BaseSearchBackend, force: bool = False) -> IndexReport:
    """Embed these products and write them into ``backend``; record nothing on the products.

    The report names what was written (``seen``: id -> the ``index_version`` read with the row)
    and what failed; :func:`index_states_record` turns it into state marks. A rebuild writes
    into a new index with this and records the states only once that index is live.

    Raises:
        SearchUnavailable: a transient engine error (nothing is recorded; retry the batch).
    """
    products = list(_products(product_ids))
    report = IndexReport(missing=sorted(set(product_ids) - {p.pk for p in products}))
    if report.missing:
        backend.delete(report.missing)
    if not products:
        return report
    # Fused vectors must live in the space of the index they are written to (the live index
    # keeps its head until `reindex` swaps in a build made with a newly trained one).
    space = spaces.space_for_index(backend)
    embeddings, photo_errors = products_embed(products, force=force, space=space)
    extra = product_vectors([p.pk for p in products])
    docs = [to_search_document(p, embeddings.get(p.pk), extra.get(p.pk)) for p in products]
    if space is None:
        logger.warning("No fusion space matches the index's fused field; %d products indexed without fused vectors", len(docs))
        for doc in docs:
            doc.vectors.pop("fused", None)
    try:
        backend.add_bulk(docs)
        rejected: dict[int, str] = {}
    except DocumentsRejected as exc:  # the engine refused these for good; the rest were written
        rejected = exc.rejected
    report.seen = {p.pk: p.index_version for p in products}
    report.space_version = space.version if space is not None else None
    for pid, reason in rejected.items():
        logger.warning("Search engine rejected product %s: %s", pid, reason)
    report.failed = {**photo_errors, **rejected}
    report.rejected = sorted(rejected)
    report.indexed = [p.pk for p in products if p.pk not in report.failed]
    return report


def index_states_record(report: IndexReport) -> IndexReport:
    """Mark the products of ``report`` indexed or failed, each only if unchanged since it was read.

    A compare-and-set per product, grouped by version:
    ``UPDATE ... WHERE id IN (...) AND index_version = <seen>``. ``index_version`` only grows,
    so a product that afterwards holds another version than it was read with was changed before
    its mark. Such products are listed in ``report.changed`` and set pending, even if another
    task marked them meanwhile (this batch may have overwritten that task's newer document);
    the caller enqueues them again, and the sweeper finds them anyway. Products deleted
    meanwhile are listed in ``report.vanished``.

    The marks are one short transaction (ids and states only: no encoding, no engine write inside
    it). Marking is idempotent, so when the database stays busy past its timeout
    (``OperationalError``, e.g. SQLite's "database is locked") it is tried again, up to
    :data:`STATE_MARK_TRIES` times with a growing pause, unless called inside an open transaction
    (which the error has spoilt); the last error propagates.

    Returns:
        ``report``, with ``indexed`` and ``failed`` cut to what was marked.
    """
    for attempt in range(1, STATE_MARK_TRIES + 1):
        try:
            return _index_states_record(report)
        except OperationalError:
            if attempt == STATE_MARK_TRIES or connection.in_atomic_block:
                raise
            logger.warning("Marking %d products: database busy, try %d of %d", len(report.seen), attempt, STATE_MARK_TRIES)
            time.sleep(0.2 * 2 ** attempt)
    raise AssertionError("unreachable")


def _index_states_record(report: IndexReport) -> IndexReport:
    now = timezone.now()
    ok = [pid for pid in report.indexed if pid in report.seen]
    by_version: dict[int, list[int]] = {}
    for pid in ok:
        by_version.setdefault(report.seen[pid], []).append(pid)
    with transaction.atomic():
        for version, ids in by_version.items():
            for start in range(0, len(ids), ID_CHUNK):
                Product.objects.filter(pk__in=ids[start:start + ID_CHUNK], index_version=version).update(
                    index_state=IndexState.INDEXED, index_error="", indexed_at=now,
                )
        for pid, reason in report.failed.items():
            if pid in report.seen:
                Product.objects.filter(pk=pid, index_version=report.seen[pid]).update(
                    index_state=IndexState.FAILED, index_error=_failure_note(reason, rejected=pid in report.rejected), indexed_at=now,
                )
    current: dict[int, int] = {}
    ids = list(report.seen)
    for start in range(0, len(ids), ID_CHUNK):
        current.update(Product.objects.filter(pk__in=ids[start:start + ID_CHUNK]).values_list("pk", "index_version"))
    report.vanished = sorted(pid for pid in report.seen if pid not in current)
    report.changed = sorted(pid for pid, version in current.items() if version != report.seen[pid])
    if report.changed:
        # What was written may be older than what another task wrote for the newer version:
        # pending until a task that read the current version has written it.
        Product.objects.filter(pk__in=report.changed).update(index_state=IndexState.PENDING)
    moved = set(report.changed) | set(report.vanished)
    report.indexed = [pid for pid in report.indexed if pid not in moved]
    report.failed = {pid: reason for pid, reason in report.failed.items() if pid not in moved}
    return report


def _failure_note(reason: str, *, rejected: bool) -> str:
    """What the admin and ``search_status`` show for a failed product."""
    if rejected:
        return f"The search engine rejected this product ({reason}); it is not searchable. Fix it and save to retry."[:2000]
    return f"{reason} Indexed by text only; upload a new photo and save to retry."


def products_index(*, product_ids: Sequence[int], backend: BaseSearchBackend | None = None, force: bool = False) -> IndexReport:
    """Embed and index these products; record the outcome on each (pending -> indexed / failed).

    Ids that no longer exist are removed from the index. A product the engine refuses for good
    (``DocumentsRejected``, e.g. a value its mapping cannot take) is marked failed with the
    engine's reason; the rest of the batch is indexed. A product changed while it was being
    indexed stays pending and is listed in ``report.changed`` (see :func:`index_states_record`);
    one deleted meanwhile is taken out of the index again. Transient engine errors propagate.
    """
    backend = backend or get_backend()
    report = products_write(product_ids=product_ids, backend=backend, force=force)
    if not report.seen:
        return report
    live = spaces.index_ref(backend)
    if report.space_version is not None and live is not None and live.version != report.space_version:
        # A rebuild with another fusion space was swapped in while this batch was embedded: its
        # fused vectors belong to the previous index. Leave the products pending, to index again.
        logger.warning("The live index changed to %s while %d products were embedded in %s; indexing them again",
                       live.version, len(report.seen), report.space_version)
        report.changed, report.indexed, report.failed = sorted(report.seen), [], {}
        Product.objects.filter(pk__in=report.changed).update(index_state=IndexState.PENDING)
        return report
    index_states_record(report)
    if report.vanished:
        backend.delete(report.vanished)
    return report


def product_record_failure(*, product_id: int, reason: str) -> None:
    """Mark a pending product failed with a reason (after retries ran out). Never raises for a missing row.

    A product another task indexed meanwhile keeps its state.
    """
    Product.objects.filter(pk=product_id, index_state=IndexState.PENDING).update(index_state=IndexState.FAILED, index_error=reason[:2000])


def product_unindex(*, product_id: int, backend: BaseSearchBackend | None = None) -> None:
    """Remove a deleted product from the index."""
    (backend or get_backend()).delete([product_id])
