"""Encoder outputs of a data set, cached on disk so a rerun of ``evaluate`` skips the models.

Cache files live in ``VAR_DIR/eval-cache`` and are keyed by a sha1 over the encoder's
``cache_key`` (its registry spec: model and preprocessing, e.g. ``all-MiniLM-L6-v2/128``) and the
inputs' content (the texts, or each photo file's bytes), so an edited file is re-encoded
and an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from django.conf import settings

from mlmodels.images import ImageRejected, open_image
from mlmodels.types import IMAGENET_CLASSES, EncoderSpec, ImageFeatures
from search.embedding import encoders

logger = logging.getLogger(__name__)

#: Photos decoded and encoded per step: bounds memory (a decoded shop-floor photo is ~1 MB).
IMAGE_CHUNK = 64


def cache_dir() -> Path:
    path = Path(settings.VAR_DIR) / "eval-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(parts: Sequence[bytes]) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(hashlib.sha1(part).digest())
    return h.hexdigest()


def text_cache_path(texts: Sequence[str], *, kind: str, tag: str, spec: EncoderSpec) -> Path:
    """The cache file of ``spec``'s ``kind`` vectors of ``texts`` (named by the spec's ``cache_key`` and the texts)."""
    key = _digest([f"{spec.cache_key or spec.name}/{kind}".encode(), *(t.encode() for t in texts)])
    suffix = "text" if spec.vector_field is None or spec == encoders.text_spec() else spec.vector_field
    return cache_dir() / f"{tag}-{suffix}-{key[:16]}.npy"


def text_vectors(texts: Sequence[str], *, kind: str, tag: str, spec: EncoderSpec | None = None) -> np.ndarray:
    """Text encoder vectors of ``texts``: ``(n, dim)`` float32 (MiniLM, e5: 384), L2-normalised; cached.

    Args:
        texts: the strings to encode.
        kind: ``"query"`` (``encode_query``) or ``"document"`` (``encode_document``).
        tag: a readable prefix of the cache file (e.g. ``"crowdflower-queries"``).
        spec: the encoder (default ``TEXT_ENCODER``'s; e.g. ``e5-small`` for its own field).

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind not in ("query", "document"):
        raise ValueError(f"Unknown text kind {kind!r}; valid: query, document")
    spec = spec or encoders.text_spec()
    path = text_cache_path(texts, kind=kind, tag=tag, spec=spec)
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape == (len(texts), spec.dim):
            return vectors
    encoder = encoders.text_encoder() if spec == encoders.text_spec() else encoders.additional_text_encoder(spec)
    encode = encoder.encode_query if kind == "query" else encoder.encode_document
    vectors = encode(list(texts)) if texts else np.zeros((0, spec.dim), np.float32)
    np.save(path, vectors)
    return vectors


def image_features(paths: Sequence[Path], *, tag: str, progress=None) -> tuple[ImageFeatures, dict[int, str]]:
    """``IMAGE_ENCODER`` outputs of the photos at ``paths``; cached.

    Photos are decoded by ``mlmodels.images.open_image`` with the upload limits from settings,
    exactly as product photos are. Logits are rounded through float16, as stored for products.

    Args:
        paths: photo files.
        tag: a readable prefix of the cache file.
        progress: optional callable ``(done, total)`` called after each chunk.

    Returns:
        ``(features (n, image_dim), logits (n, 1000))`` with zero rows for rejected photos, and
        row -> reason for each rejected photo.
    """
    blobs = [p.read_bytes() if p.is_file() else b"" for p in paths]
    spec = encoders.image_spec()
    key = _digest([(spec.cache_key or spec.name).encode(), *blobs])
    path = cache_dir() / f"{tag}-image-{key[:16]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if data["features"].shape == (len(paths), spec.dim):
                rejected = {int(i): str(r) for i, r in zip(data["rejected_rows"], data["rejected_reasons"], strict=True)}
                return ImageFeatures(data["features"], data["logits"].astype(np.float32)), rejected
    features = np.zeros((len(paths), spec.dim), np.float32)
    logits = np.zeros((len(paths), IMAGENET_CLASSES), np.float16)
    rejected: dict[int, str] = {}
    encoder = encoders.image_encoder()
    for start in range(0, len(paths), IMAGE_CHUNK):
        rows, images = [], []
        for i in range(start, min(start + IMAGE_CHUNK, len(paths))):
            try:
                images.append(open_image(blobs[i], max_bytes=settings.MAX_IMAGE_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS).image)
                rows.append(i)
            except ImageRejected as exc:
                rejected[i] = f"{paths[i].name}: {exc.reason}"
        blobs[start:start + IMAGE_CHUNK] = [b""] * len(blobs[start:start + IMAGE_CHUNK])  # free memory as we go
        if images:
            out = encoder.encode(images)
            features[rows] = out.features
            logits[rows] = out.logits.astype(np.float16)
        if progress is not None:
            progress(min(start + IMAGE_CHUNK, len(paths)), len(paths))
    np.savez(path, features=features, logits=logits, rejected_rows=np.array(sorted(rejected), np.int64),
             rejected_reasons=np.array([rejected[i] for i in sorted(rejected)], dtype=str))
    if rejected:
        logger.warning("%d photos of %s were rejected, e.g. %s", len(rejected), tag, next(iter(rejected.values())))
    return ImageFeatures(features, logits.astype(np.float32)), rejected
