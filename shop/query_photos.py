"""A shopper's query photo, kept between the upload and the result pages as features and a preview.

The photo itself is never stored: after decoding and encoding, only its encoder output
(features ``(1, image_dim)``, 1280 for EfficientNet-Lite0, and logits ``(1, 1000)``, about 18 KB)
and a small JPEG preview (:data:`PREVIEW_PX` on its longer side, 2-6 KB, for the photo chip on the
results page) are kept under a random token, so paging, sorting and filtering the results reuse
them without a second upload. Both expire together (:func:`query_photo_ttl`). They are kept in
the ``state`` cache (:mod:`shop.state`: Redis or the database), shared by every process and never
evicted before their time, so any web worker can read them back for the whole hour whatever else
is cached meanwhile. If that store cannot be reached, storing or reading a photo raises
``SearchUnavailable`` (the views answer 503, "temporarily unavailable").
"""

from __future__ import annotations

import io
import logging
import re
import secrets

import numpy as np
from django.conf import settings

from mlmodels.images import ImageRejected, open_image
from mlmodels.types import IMAGENET_CLASSES, ImageFeatures
from search.backends.base import SearchUnavailable
from search.embedding.encoders import image_dim
from shop.state import STATE_ERRORS, state_cache
from shop.uploads import photo_limits

logger = logging.getLogger(__name__)
#: What a shopper reads when the photo store cannot be reached.
STORE_UNAVAILABLE = "Photo search is temporarily unavailable. Please try again in a minute, or search by words."

#: Tokens are 22 URL-safe characters (128 random bits); anything else is refused before a lookup.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_KEY = "query-photo:{}"
_PREVIEW_KEY = "query-photo-preview:{}"
#: Longer side of the preview, in pixels: the chip shows it at 56 px, sharp on 2x screens.
PREVIEW_PX = 112


def query_photo_ttl() -> int:
    """Seconds a photo search stays usable (``SEARCH_PHOTO_TTL_S``, default one hour)."""
    return int(getattr(settings, "SEARCH_PHOTO_TTL_S", 3600))


def query_photo_store(features: ImageFeatures, preview: bytes | None = None) -> str:
    """Keep the encoder output of one query photo (and its preview) and return the token that reads it back.

    Args:
        features: ``features`` ``(1, image_dim)`` and ``logits`` ``(1, 1000)`` float32.
        preview: a small JPEG made by :func:`query_photo_preview`, or ``None``.

    Returns:
        A 22-character URL-safe token, valid for :func:`query_photo_ttl` seconds.

    Raises:
        SearchUnavailable: the ``state`` cache cannot be reached.
    """
    token = secrets.token_urlsafe(16)
    payload = {
        "features": np.asarray(features.features, dtype=np.float32).reshape(-1).tolist(),
        "logits": np.asarray(features.logits, dtype=np.float32).reshape(-1).tolist(),
    }
    try:
        state_cache().set(_KEY.format(token), payload, timeout=query_photo_ttl())
        if preview:
            state_cache().set(_PREVIEW_KEY.format(token), preview, timeout=query_photo_ttl())
    except STATE_ERRORS:
        logger.exception("A photo search could not be stored")
        raise SearchUnavailable(STORE_UNAVAILABLE) from None
    return token


def _stored(key: str):
    try:
        return state_cache().get(key)
    except STATE_ERRORS:
        logger.exception("A photo search could not be read back")
        raise SearchUnavailable(STORE_UNAVAILABLE) from None


def query_photo_preview(data: bytes) -> bytes | None:
    """A JPEG of at most :data:`PREVIEW_PX` px on its longer side, EXIF rotation applied, no metadata.

    Decoded by ``mlmodels.images.open_image`` within the photo limits in settings, shrunk while
    decoding (a JPEG at 1/2-1/8 scale), so the preview costs memory in proportion to its size.

    Args:
        data: the photo's bytes.

    Returns:
        The JPEG bytes, or ``None`` if the photo cannot be used (the chip then shows an icon).
    """
    try:
        image = open_image(data, **photo_limits(), fit=PREVIEW_PX).image
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=80)
    except (ImageRejected, OSError, ValueError):
        return None
    return out.getvalue()


def query_photo_preview_load(token: str) -> bytes | None:
    """The preview JPEG stored under ``token``, or ``None`` (malformed, unknown or expired token).

    Raises:
        SearchUnavailable: the ``state`` cache cannot be reached.
    """
    if not TOKEN_RE.match(token or ""):
        return None
    preview = _stored(_PREVIEW_KEY.format(token))
    return preview if isinstance(preview, bytes) else None


def query_photo_load(token: str) -> ImageFeatures | None:
    """The features stored under ``token``, or ``None`` when it is malformed, unknown, expired, or of
    another width than ``IMAGE_ENCODER``'s (stored before the encoder changed).

    Raises:
        SearchUnavailable: the ``state`` cache cannot be reached.
    """
    if not TOKEN_RE.match(token or ""):
        return None
    payload = _stored(_KEY.format(token))
    if not isinstance(payload, dict):
        return None
    features = np.asarray(payload.get("features", []), dtype=np.float32)
    logits = np.asarray(payload.get("logits", []), dtype=np.float32)
    dim = image_dim()
    if features.size != dim or logits.size != IMAGENET_CLASSES:
        return None
    return ImageFeatures(features=features.reshape(1, dim), logits=logits.reshape(1, IMAGENET_CLASSES))
