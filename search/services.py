"""Writes of the search app: embed products and put them in (or take them out of) the index.

Failures are sorted in two kinds. *Transient* ones (index locked, engine unreachable, database
busy) propagate so the Celery task retries with backoff. *Permanent* ones (a photo that cannot
be decoded) are recorded on the product (``index_state = failed`` with the reason) and the
product is still indexed by its text, so it stays findable while the merchant fixes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Prefetch
from django.utils import timezone

from mlmodels.fusion import FusionSpace, fuse
from mlmodels.image import ImageFeatures
from mlmodels.images import ImageRejected, open_image
from search.backends import get_backend
from search.backends.base import BaseSearchBackend, DocumentsRejected
from search.documents import document_text, to_search_document
from search.embedding import encoders, encoding, spaces
from search.models import ProductEmbedding
from shop.models import IndexState, Product, ProductImage

logger = logging.getLogger(__name__)
T = TypeVar("T")


#: Tries of the state update that follows an engine write (the write is done; only the marks remain).
STATE_UPDATE_TRIES = 5


@dataclass
class IndexReport:
    """What a batch of indexing did: ids indexed, and id -> reason for the ones that failed.

    ``superseded``: products changed while they were being indexed (the engine may hold the
    older version); they are left pending and must be indexed again.
    """

    indexed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)


def _retried(write: Callable[[], T], *, what: str) -> T:
    """Run a short database write, trying again on ``OperationalError`` (e.g. SQLite's "database is
    locked" after its busy timeout) up to :data:`STATE_UPDATE_TRIES` times with a growing pause.

    Only for writes that are safe to repeat (idempotent updates). The last error propagates.
    """
    for attempt in range(1, STATE_UPDATE_TRIES + 1):
        try:
            return write()
        except OperationalError:
            if attempt == STATE_UPDATE_TRIES:
                raise
            logger.warning("%s: database busy, try %d of %d", what, attempt, STATE_UPDATE_TRIES)
            time.sleep(0.2 * 2 ** attempt)
    raise AssertionError("unreachable")


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

    Text is re-encoded only when it changed, a photo only when its bytes changed, unless
    ``force``; the fused vector is always recomputed, in ``space`` (default: the active space).
    Returns (product id -> embedding, product id -> reason its photo was not used).
    """
    space = space or encoding.get_space()
    existing = {e.product_id: e for e in ProductEmbedding.objects.filter(product__in=[p.pk for p in products])}
    texts = {p.pk: document_text(p) for p in products}
    photo_errors: dict[int, str] = {}

    to_text = [p for p in products if force or p.pk not in existing or existing[p.pk].text_hash != encoding.sha1(texts[p.pk])]
    text_vecs = dict(zip([p.pk for p in to_text], encoders.text_encoder().encode_document([texts[p.pk] for p in to_text]), strict=True))

    photos: dict[int, tuple[str, object]] = {}
    for p in products:
        img = p.primary_image
        if img is None:
            continue
        try:
            with img.image.open("rb") as fh:
                raw = fh.read(settings.MAX_IMAGE_BYTES + 1)
            digest = encoding.sha1(raw)
            if not force and p.pk in existing and existing[p.pk].image_hash == digest and existing[p.pk].image_features is not None:
                continue
            photos[p.pk] = (digest, open_image(raw, max_bytes=settings.MAX_IMAGE_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS).image)
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
            emb.text_hash = encoding.sha1(texts[p.pk])
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
    return out, photo_errors


def products_index(*, product_ids: Sequence[int], backend: BaseSearchBackend | None = None, force: bool = False) -> IndexReport:
    """Embed and index these products; record the outcome on each (pending -> indexed / failed).

    Ids that no longer exist are removed from the index. A product the engine refuses for good
    (``DocumentsRejected``, e.g. a value its mapping cannot take) is marked failed with the
    engine's reason; the rest of the batch is indexed. Transient engine errors propagate.
    """
    backend = backend or get_backend()
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
    docs = [to_search_document(p, embeddings.get(p.pk)) for p in products]
    if space is None:
        logger.warning("No fusion space matches the index's fused field; %d products indexed without fused vectors", len(docs))
        for doc in docs:
            doc.vectors.pop("fused", None)
    try:
        backend.add_bulk(docs)
        rejected: dict[int, str] = {}
    except DocumentsRejected as exc:  # the engine refused these for good; the rest were written
        rejected = exc.rejected
    marks = {p.pk: (IndexState.INDEXED, "") for p in products}
    for pid, reason in photo_errors.items():
        marks[pid] = (IndexState.FAILED, f"{reason} Indexed by text only; upload a new photo and save to retry.")
    for pid, reason in rejected.items():
        logger.warning("Search engine rejected product %s: %s", pid, reason)
        marks[pid] = (IndexState.FAILED, f"The search engine rejected this product ({reason}); it is not searchable. Fix it and save to retry."[:2000])
    seen = {p.pk: p.updated_at for p in products}
    marked = _retried(lambda: _state_mark(marks, seen), what=f"Marking {len(marks)} products indexed")
    report.superseded = sorted(set(marks) - marked)
    if report.superseded:
        logger.info("Products %s changed while being indexed; they stay pending and are indexed again", report.superseded[:20])
    report.indexed = [pid for pid, (state, _) in marks.items() if state == IndexState.INDEXED and pid in marked]
    report.failed = {pid: reason for pid, reason in {**photo_errors, **rejected}.items() if pid in marked}
    return report


def _state_mark(marks: dict[int, tuple[str, str]], seen: dict) -> set[int]:
    """Record each product's outcome, only where the row is still the version that was indexed.

    A product saved again meanwhile (its ``updated_at`` moved) is set back to ``pending``: the
    engine may now hold the older version (two workers can finish in either order), so it must
    be indexed again (compare-and-set on ``updated_at``). Returns the ids marked.
    """
    now = timezone.now()
    with transaction.atomic():  # short: ids and marks only (no encoding, no engine write inside)
        rows = Product.objects.select_for_update().filter(pk__in=list(marks)).values_list("pk", "updated_at")
        marked = {pid for pid, updated_at in rows if updated_at == seen[pid]}
        for mark in set(marks.values()):
            ids = [pid for pid, m in marks.items() if m == mark and pid in marked]
            if ids:
                Product.objects.filter(pk__in=ids).update(index_state=mark[0], index_error=mark[1], indexed_at=now)
        superseded = set(marks) - marked
        if superseded:
            Product.objects.filter(pk__in=superseded).update(index_state=IndexState.PENDING)
    return marked


def product_record_failure(*, product_id: int, reason: str) -> None:
    """Mark a product failed with a reason (after retries ran out). Never raises for a missing row."""
    Product.objects.filter(pk=product_id).update(index_state=IndexState.FAILED, index_error=reason[:2000])


def product_unindex(*, product_id: int, backend: BaseSearchBackend | None = None) -> None:
    """Remove a deleted product from the index."""
    (backend or get_backend()).delete([product_id])


def products_mark_stale(*, queryset=None) -> int:
    """Mark products pending (e.g. after a new fusion head) so the sweeper or a reindex refreshes them."""
    return (Product.objects.all() if queryset is None else queryset).update(index_state=IndexState.PENDING)
