"""Does a product's photo match its words? The photo-text consistency score and its likely mismatches.

Score (``ProductEmbedding.consistency``): the cosine of the product's text side and photo side,
both projected into the fusion space its fused vector lives in, ``<space.text(t), space.image(i)>``
in ``[-1, 1]``; ``None`` for a product without a photo. It is computed whenever the fused vector is
(``search.services.products_embed``: indexing, reindex, a new head) and for every product by
:func:`consistency_refresh` (``train_fusion`` runs it for the new head).

A product is a **likely mismatch** (a wrong photo uploaded) when its score is below the
``CONSISTENCY_FLAG_QUANTILE`` quantile (default 1 %) of the catalog's scores in the live space,
and only when that space is a trained head: the zero-shot bridge catches 4 % of swapped photos
at 1 % false alarms, a trained head 81 % (fashion catalog, 5 % of 6,137 photos swapped; the README
gives the measurement). The threshold needs at least ``CONSISTENCY_MIN_PRODUCTS`` scores.

Leaving flagged products out of head training was measured and dropped (no gain); the score is a
report for merchants and staff (the admin's product list, ``manage.py search_status``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.cache import cache

from mlmodels.fusion import FusionSpace
from mlmodels.types import ImageFeatures
from search.embedding import spaces
from search.models import ProductEmbedding

#: Seconds a catalog's flag threshold is cached per space (the admin list reads it per page).
THRESHOLD_TTL_S = 300
BRIDGE = "bridge"


def pair_scores(text_vectors: np.ndarray, image: ImageFeatures, space: FusionSpace) -> np.ndarray:
    """Consistency of ``n`` (text, photo) pairs in ``space``.

    Args:
        text_vectors: ``(n, text_dim)`` float32 document vectors (MiniLM: 384).
        image: features ``(n, image_dim)`` and logits ``(n, 1000)`` of the photos.
        space: the fusion space (a trained head, or the bridge).

    Returns:
        ``(n,)`` float32 cosines in ``[-1, 1]``.
    """
    t = np.asarray(space.text(text_vectors), np.float32)
    i = np.asarray(space.image(image), np.float32)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    i /= np.maximum(np.linalg.norm(i, axis=1, keepdims=True), 1e-12)
    return (t * i).sum(axis=1)


def embedding_score(emb: ProductEmbedding, space: FusionSpace) -> float | None:
    """Consistency of one stored embedding in ``space`` (``None`` without a photo)."""
    if emb.image_features is None or not emb.text_vector:
        return None
    image = ImageFeatures(ProductEmbedding.unpack(emb.image_features)[None, :], ProductEmbedding.unpack(emb.image_logits, np.float16)[None, :])
    return float(pair_scores(ProductEmbedding.unpack(emb.text_vector)[None, :], image, space)[0])


def consistency_refresh(space: FusionSpace | None = None, *, batch: int = 2000) -> int:
    """(Re)compute the score of every product whose fused vector lives in ``space`` (default: the active one).

    Returns:
        How many products got a score.
    """
    space = space or spaces.get_space()
    done = 0
    qs = ProductEmbedding.objects.filter(space_version=space.version, image_features__isnull=False).order_by("pk")
    ids = list(qs.values_list("pk", flat=True))
    for start in range(0, len(ids), batch):
        rows = list(ProductEmbedding.objects.filter(pk__in=ids[start:start + batch]))
        text = np.stack([ProductEmbedding.unpack(e.text_vector) for e in rows])
        image = ImageFeatures(np.stack([ProductEmbedding.unpack(e.image_features) for e in rows]),
                              np.stack([ProductEmbedding.unpack(e.image_logits, np.float16) for e in rows]))
        for e, s in zip(rows, pair_scores(text, image, space), strict=True):
            e.consistency = float(s)
        ProductEmbedding.objects.bulk_update(rows, ["consistency"])
        done += len(rows)
    cache.delete(_cache_key(space.version))
    return done


@dataclass(frozen=True)
class Threshold:
    """The flag threshold of one space: scores below ``value`` are likely mismatches (``None``: no flags, see ``reason``)."""

    space_version: str
    value: float | None
    n_scored: int
    reason: str = ""


def _cache_key(version: str) -> str:
    return f"search:consistency-threshold:{version}"


def threshold(space_version: str | None = None) -> Threshold:
    """The ``CONSISTENCY_FLAG_QUANTILE`` quantile of the scores in ``space_version`` (default: the live
    index's space, else the active one); cached :data:`THRESHOLD_TTL_S` seconds."""
    version = space_version or _live_version()
    cached = cache.get(_cache_key(version))
    if cached is not None:
        return Threshold(*cached)
    scores = np.array(list(ProductEmbedding.objects.filter(space_version=version, consistency__isnull=False)
                           .values_list("consistency", flat=True)), np.float64)
    if version.startswith(BRIDGE):
        out = Threshold(version, None, len(scores), "the zero-shot bridge cannot tell a wrong photo (train a fusion head)")
    elif len(scores) < settings.CONSISTENCY_MIN_PRODUCTS:
        out = Threshold(version, None, len(scores), f"{len(scores)} scored products; flags need {settings.CONSISTENCY_MIN_PRODUCTS}")
    else:
        out = Threshold(version, float(np.quantile(scores, settings.CONSISTENCY_FLAG_QUANTILE)), len(scores))
    cache.set(_cache_key(version), (out.space_version, out.value, out.n_scored, out.reason), THRESHOLD_TTL_S)
    return out


def _live_version() -> str:
    from search.backends import get_backend  # the engine only when no version is given

    try:
        live = spaces.space_for_index(get_backend())
    except Exception:  # noqa: BLE001 - an unreachable engine must not break the admin; fall back to the active space
        live = None
    return (live or spaces.active_ref()).version


def likely_mismatch(emb: ProductEmbedding | None, limit: Threshold | None = None) -> bool:
    """True when ``emb``'s consistency is below its space's threshold (False without a score or a threshold)."""
    if emb is None or emb.consistency is None:
        return False
    limit = limit if limit is not None and limit.space_version == emb.space_version else threshold(emb.space_version)
    return limit.value is not None and emb.consistency < limit.value


def likely_mismatches(space_version: str | None = None, limit: int = 20) -> tuple[Threshold, list[ProductEmbedding]]:
    """The lowest-scoring products below the threshold (with their products), lowest first."""
    t = threshold(space_version)
    if t.value is None:
        return t, []
    rows = (ProductEmbedding.objects.filter(space_version=t.space_version, consistency__lt=t.value)
            .select_related("product").order_by("consistency")[:limit])
    return t, list(rows)
