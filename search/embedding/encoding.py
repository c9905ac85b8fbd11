"""Product and query vectors: text, image and fused embeddings from the encoders (mlmodels).

``vector_dims()`` is cheap (no model load) so backends can be created at start-up; the models
themselves load on the first encode (:mod:`search.embedding.encoders`). Which fusion space is in
service is decided in :mod:`search.embedding.spaces`. "Vector fusion" here means mixing a
text and an image vector into one fused vector; rank fusion lives in :mod:`search.hybrid`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from threading import Lock

import numpy as np
from django.conf import settings

from mlmodels.fusion import FusionSpace, fuse
from mlmodels.images import DecodedImage
from mlmodels.types import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, EncoderSpec, ImageFeatures
from search.embedding import encoders, spaces

#: Text query vectors kept per process (keyed by encoder and text). Repeated queries (paging,
#: popular searches) skip the encoder; 4,096 x 384 float32 is 6 MB.
QUERY_CACHE_SIZE = 4096


def get_space(version: str | None = None) -> FusionSpace:
    """The active fusion space (a trained head if one is active and loads, else the bridge),
    or the space named ``version``. See :mod:`search.embedding.spaces`."""
    return spaces.get_space(version)


def get_space_info(backend=None) -> dict:
    """Name, dimension, version, held-out metrics of the active space, and a ``note`` for
    ``search_status``; with ``backend``, also the live index's space. Loads no model."""
    return spaces.space_status(backend)


def space_dim() -> int:
    """Dimension of the active space's fused vectors, without loading any model."""
    return spaces.active_ref().dim


def vector_dims(fused_dim: int | None = None) -> dict[str, int]:
    """Vector field -> dimension for the search backends, from the encoders' registry specs (no model load).

    ``text`` and ``image`` are ``TEXT_ENCODER``'s and ``IMAGE_ENCODER``'s widths, ``fused`` the active
    space's (or ``fused_dim``), and each of ``ADDITIONAL_TEXT_ENCODERS`` adds its own field.
    """
    dims = {"text": encoders.text_dim(), "image": encoders.image_dim(), "fused": fused_dim or space_dim()}
    dims.update({spec.vector_field: spec.dim for spec in encoders.additional_text_specs()})
    return dims


def fusion_weights(overrides: dict[str, float] | None = None) -> tuple[float, float]:
    w = {**settings.FUSION_WEIGHTS, **(overrides or {})}
    return float(w["text"]), float(w["image"])


def sha1(data: bytes | str) -> str:
    return hashlib.sha1(data.encode() if isinstance(data, str) else data).hexdigest()


def source_hash(spec: EncoderSpec, data: bytes | str) -> str:
    """Hex sha1 of what ``spec``'s encoder read (a document text, a photo's bytes), naming the encoder,
    so that switching ``TEXT_ENCODER`` or ``IMAGE_ENCODER`` re-encodes at the next reindex.

    For the default encoders (MiniLM, EfficientNet-Lite0) it is plain ``sha1(data)``: the hashes
    stored before encoders were pluggable stay valid. Others: ``sha1(name + "\x1f" + data)``.
    """
    if spec.name in (DEFAULT_TEXT_ENCODER, DEFAULT_IMAGE_ENCODER):
        return sha1(data)
    return sha1(spec.name.encode() + b"\x1f" + (data.encode() if isinstance(data, str) else data))


@dataclass(frozen=True)
class QueryVectors:
    """Vectors of one query. ``text`` ``(text_dim,)`` (MiniLM: 384); ``image`` ``(image_dim,)`` (EfficientNet-Lite0:
    1280); ``fused`` ``(dim,)`` in the fusion space; all L2-normalised.

    ``space`` names the fusion space ``fused`` was made in (``"bridge"`` or ``"fusion"``, a trained
    head); ``None`` when there is no fused vector. ``extra`` holds the query's vector in each
    ``ADDITIONAL_TEXT_ENCODERS`` field (e.g. ``{"text_e5": (384,)}``), for words only.
    """

    text: np.ndarray | None = None
    image: np.ndarray | None = None
    fused: np.ndarray | None = None
    space: str | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def by_field(self) -> dict[str, np.ndarray]:
        """Vector field -> this query's vector, for every field it has one for (``text``, ``image``,
        ``fused`` and the ``extra`` fields)."""
        base = {name: v for name in ("text", "image", "fused") if (v := getattr(self, name)) is not None}
        return {**base, **self.extra}

    def for_field(self, vector_field: str) -> np.ndarray | None:
        """The query vector that searches ``vector_field`` (``text``, ``image``, ``fused`` or an
        ``extra`` field such as ``text_e5``); ``None`` when the query has none for it (no words, no
        photo, no fusion space, the field not in service) or the field is unknown."""
        return self.by_field().get(vector_field)


class _LRU:
    def __init__(self, size: int):
        self.size, self.data, self.lock = size, OrderedDict(), Lock()

    def get(self, key):
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)


_query_cache = _LRU(QUERY_CACHE_SIZE)


def encode_text_query(text: str) -> np.ndarray:
    """``(text_dim,)`` float32 L2-normalised vector of a query by ``TEXT_ENCODER`` (cached per process)."""
    key = (encoders.text_spec().name, text)
    cached = _query_cache.get(key)
    if cached is None:
        cached = encoders.text_encoder().encode_query([text])[0]
        _query_cache.put(key, cached)
    return cached


def encode_additional_queries(text: str) -> dict[str, np.ndarray]:
    """Vector field -> ``(dim,)`` float32 L2-normalised vector of a query by each of
    ``ADDITIONAL_TEXT_ENCODERS`` (e.g. ``text_e5``: multilingual-e5-small, 384); cached per process."""
    out = {}
    for spec in encoders.additional_text_specs():
        key = (spec.name, text)
        cached = _query_cache.get(key)
        if cached is None:
            cached = encoders.additional_text_encoder(spec).encode_query([text])[0]
            _query_cache.put(key, cached)
        out[spec.vector_field] = cached
    return out


def encode_image_query(image: DecodedImage) -> ImageFeatures:
    """Features ``(1, image_dim)`` and logits ``(1, 1000)`` of a query photo, by ``IMAGE_ENCODER``."""
    return encoders.image_encoder().encode([image.image])


def query_vectors(
    text: str | None, image: ImageFeatures | None, *, fusion_overrides: dict | None = None, backend=None,
) -> QueryVectors:
    """Vectors for a text, photo or photo+text query; the fused query mixes both sides like products do.

    With ``backend``, the fused vector is made in the space of that backend's live index (which
    lags the active space until ``reindex`` swaps); ``fused`` is ``None`` when no loadable space
    matches that index. Without it, the active space is used.
    """
    space = spaces.space_for_index(backend) if backend is not None else get_space()
    t = encode_text_query(text) if text else None
    extra = encode_additional_queries(text) if text else {}
    if space is None:
        return QueryVectors(text=t, image=None if image is None else image.features[0], fused=None, extra=extra)
    return query_vectors_from(t, image, space=space, fusion_overrides=fusion_overrides, extra=extra)


def query_vectors_from(
    text_vector: np.ndarray | None,
    image: ImageFeatures | None,
    *,
    space: FusionSpace,
    fusion_overrides: dict | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> QueryVectors:
    """A query's vectors from encoder outputs already computed (the relevance harness caches them).

    Args:
        text_vector: ``(text_dim,)`` query vector from the text encoder, or ``None``.
        image: features ``(1, image_dim)`` and logits ``(1, 1000)`` of the query photo, or ``None``.
        space: the fusion space the fused vector is built in.
        fusion_overrides: ``{"text": w, "image": w}`` over ``FUSION_WEIGHTS``.
        extra: vector field -> ``(dim,)`` query vector of an additional text encoder (``QueryVectors.extra``).
    """
    t_space = space.text(text_vector[None, :])[0] if text_vector is not None else None
    i_space = space.image(image)[0] if image is not None else None
    w_text, w_image = fusion_weights(fusion_overrides)
    fused = fuse(t_space, i_space, text_weight=w_text, image_weight=w_image) if (t_space is not None or i_space is not None) else None
    return QueryVectors(text=text_vector, image=None if image is None else image.features[0], fused=fused,
                        space=space.name if fused is not None else None, extra=dict(extra or {}))


def fused_vectors(
    text_vectors: np.ndarray | None,
    image: ImageFeatures | None,
    *,
    space: FusionSpace,
    fusion_overrides: dict | None = None,
) -> np.ndarray:
    """Fused vectors of ``n`` products that all have the same sides, as ``services.products_embed`` builds them.

    Args:
        text_vectors: ``(n, text_dim)`` document vectors from the text encoder, or ``None`` (photo-only products).
        image: features ``(n, image_dim)`` and logits ``(n, 1000)``, or ``None`` (text-only products).
        space: the fusion space.
        fusion_overrides: ``{"text": w, "image": w}`` over ``FUSION_WEIGHTS``.

    Returns:
        ``(n, space.dim)`` float32, L2-normalised.

    Raises:
        ValueError: both sides are missing.
    """
    w_text, w_image = fusion_weights(fusion_overrides)
    t_space = space.text(text_vectors) if text_vectors is not None else None
    i_space = space.image(image) if image is not None else None
    return fuse(t_space, i_space, text_weight=w_text, image_weight=w_image)


def index_spec() -> tuple[dict[str, int], dict]:
    """What a search backend is built with (``search.backends.provide_index_spec``): the vector
    dimensions of the encoders in service and the active fusion space's record, which a first
    index stores with its fused vectors. Loads no model."""
    return vector_dims(), spaces.active_ref().as_dict()
