"""The shared text-image space and fused product vectors.

Text (MiniLM, 384-d) and photos (EfficientNet-Lite0, 1280-d) live in different spaces. A
:class:`FusionSpace` maps both into one space of ``dim`` dimensions, so that a shopper's words
can be compared with a product's photo and a product gets one fused vector.

:class:`ZeroShotBridge` is the space used before any head is trained (cold start): a photo is
mapped to the probability-weighted mean of the MiniLM embeddings of the ImageNet class names
(mean-centred), words to their own MiniLM embedding (centred the same way). It needs no
training, so search works on day one.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Protocol

import numpy as np

from mlmodels.types import DEFAULT_TEXT_ENCODER, ImageFeatures, TextEncoder

#: Softmax temperature on ImageNet logits for the bridge. 1.0 keeps EfficientNet's own
#: calibration; sharper values made class noise dominate on Flipkart photos.
BRIDGE_TEMPERATURE = 1.0
CLASS_PROMPT = "a photo of a {}"
#: Kinds of trained fusion head (:mod:`mlmodels.head`); here so that artefacts are checked without torch.
HEAD_KINDS = ("linear", "mlp")


class FusionSpace(Protocol):
    """Maps text vectors and image features into one shared space of ``dim`` dimensions."""

    name: str
    dim: int
    version: str

    def text(self, text_vectors: np.ndarray) -> np.ndarray:
        """``(n, text_dim)`` text encoder vectors (384 for MiniLM) -> ``(n, dim)`` float32, L2-normalised."""

    def image(self, features: ImageFeatures) -> np.ndarray:
        """Image encoder output for ``n`` photos -> ``(n, dim)`` float32, L2-normalised."""


@cache
def bridge_version(encoder_name: str = DEFAULT_TEXT_ENCODER) -> str:
    """Version of the zero-shot bridge over text encoder ``encoder_name`` (a registry name), without a model load.

    ``"bridge-<8 hex>"`` of the class names for the default encoder (MiniLM), so indexes built
    before encoders were pluggable keep their version; ``"bridge-<8 hex>-<encoder_name>"`` for another.
    """
    version = "bridge-" + hashlib.sha1("|".join(imagenet_class_names()).encode()).hexdigest()[:8]
    return version if encoder_name == DEFAULT_TEXT_ENCODER else f"{version}-{encoder_name}"


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names, in logit order (``mlmodels/data/imagenet_classes.txt``)."""
    text = resources.files("mlmodels").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt must hold 1000 class names, found {len(names)}")
    return names


class ZeroShotBridge:
    """Cold-start space: ImageNet class probabilities x MiniLM embeddings of the class names.

    ``image(f) = normalise(softmax(logits / T) @ (E - mean(E)))`` and
    ``text(t) = normalise(t - mean(E))``, where ``E`` is the ``(1000, text_dim)`` matrix of class-name
    embeddings. The idea is DeViSE/ConSE-style zero-shot transfer (Norouzi et al., "Zero-Shot
    Learning by Convex Combination of Semantic Embeddings", ICLR 2014).

    Args:
        text_encoder: embeds the class names (``encode_document``); its ``dim`` is the bridge's.
        encoder_name: its registry name, which the bridge's ``version`` names (:func:`bridge_version`).
    """

    name = "bridge"

    def __init__(self, text_encoder: TextEncoder, *, encoder_name: str = DEFAULT_TEXT_ENCODER):
        names = imagenet_class_names()
        embeddings = text_encoder.encode_document([CLASS_PROMPT.format(n) for n in names])
        self._mean = embeddings.mean(axis=0, keepdims=True)
        self._classes = embeddings - self._mean
        self.dim = int(text_encoder.dim)
        self.version = bridge_version(encoder_name)

    def text(self, text_vectors: np.ndarray) -> np.ndarray:
        return l2_normalise(np.asarray(text_vectors, np.float32) - self._mean)

    def image(self, features: ImageFeatures) -> np.ndarray:
        logits = features.logits / BRIDGE_TEMPERATURE
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return l2_normalise(probs @ self._classes)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; all-zero rows stay zero. Returns float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def fuse(text_part: np.ndarray | None, image_part: np.ndarray | None, *, text_weight: float, image_weight: float) -> np.ndarray:
    """Fused vector: ``normalise(w_t * text + w_i * image)``, with a missing side left out.

    Args:
        text_part: ``(dim,)`` or ``(n, dim)`` text side in the fusion space, or ``None``.
        image_part: same shape, image side, or ``None``.
        text_weight, image_weight: non-negative mixing weights (settings ``FUSION_WEIGHTS``).

    Returns:
        float32, L2-normalised, the shape of the inputs.

    Raises:
        ValueError: both sides are missing.
    """
    parts = [(w, p) for w, p in ((text_weight, text_part), (image_weight, image_part)) if p is not None]
    if not parts:
        raise ValueError("A fused vector needs a text side, an image side, or both")
    if len(parts) == 1:
        return l2_normalise(parts[0][1])
    return l2_normalise(sum(w * np.asarray(p, np.float32) for w, p in parts))
