"""A shopper's query photo, kept between the upload and the result pages as features only.

The photo itself is never stored: after decoding and encoding, only its encoder output
(features ``(1, image_dim)``, 1280 for EfficientNet-Lite0, and logits ``(1, 1000)``, about 18 KB) goes into Django's cache under a
random token, so paging, sorting and filtering the results reuse it without a second upload.
The cache is shared by every process (see ``CACHES``), so any web worker can read it back.
"""

from __future__ import annotations

import re
import secrets

import numpy as np
from django.conf import settings
from django.core.cache import cache

from mlmodels.types import IMAGENET_CLASSES, ImageFeatures
from search.embedding.encoders import image_dim

#: Tokens are 22 URL-safe characters (128 random bits); anything else is refused before a lookup.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_KEY = "query-photo:{}"


def query_photo_ttl() -> int:
    """Seconds a photo search stays usable (``SEARCH_PHOTO_TTL_S``, default one hour)."""
    return int(getattr(settings, "SEARCH_PHOTO_TTL_S", 3600))


def query_photo_store(features: ImageFeatures) -> str:
    """Keep the encoder output of one query photo and return the token that reads it back.

    Args:
        features: ``features`` ``(1, image_dim)`` and ``logits`` ``(1, 1000)`` float32.

    Returns:
        A 22-character URL-safe token, valid for :func:`query_photo_ttl` seconds.
    """
    token = secrets.token_urlsafe(16)
    payload = {
        "features": np.asarray(features.features, dtype=np.float32).reshape(-1).tolist(),
        "logits": np.asarray(features.logits, dtype=np.float32).reshape(-1).tolist(),
    }
    cache.set(_KEY.format(token), payload, timeout=query_photo_ttl())
    return token


def query_photo_load(token: str) -> ImageFeatures | None:
    """The features stored under ``token``, or ``None`` when it is malformed, unknown, expired, or of
    another width than ``IMAGE_ENCODER``'s (stored before the encoder changed)."""
    if not TOKEN_RE.match(token or ""):
        return None
    payload = cache.get(_KEY.format(token))
    if not isinstance(payload, dict):
        return None
    features = np.asarray(payload.get("features", []), dtype=np.float32)
    logits = np.asarray(payload.get("logits", []), dtype=np.float32)
    dim = image_dim()
    if features.size != dim or logits.size != IMAGENET_CLASSES:
        return None
    return ImageFeatures(features=features.reshape(1, dim), logits=logits.reshape(1, IMAGENET_CLASSES))
