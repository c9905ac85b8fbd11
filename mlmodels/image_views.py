"""Test-time views of photos: several crops and mirror images of one photo, their features averaged.

A view is a deterministic square crop of a decoded photo; a view set's image vector is the
L2-normalised mean of its views' features (test-time augmentation: Simonyan & Zisserman 2015,
"Very Deep Convolutional Networks", sec. 3.2). The settings ``IMAGE_QUERY_VIEWS`` (shoppers'
photos) and ``IMAGE_GALLERY_VIEWS`` (catalog photos, at indexing) name a view set.

Pillow and numpy only: the encoder is passed in, so importing this module loads no model library.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from mlmodels.types import ImageFeatures

#: The encoders' input side (EfficientNet-Lite0: 224 px).
INPUT_SIZE = 224
#: View -> ``(scale, dx, dy, mirror)``: a square of ``scale`` x the photo's shorter side, its centre moved by
#: ``dx, dy`` (share of the free margin, -1..1), mirrored or not. ``center`` is the plain preprocessing.
VIEWS: dict[str, tuple[float, float, float, bool]] = {
    "center": (1.0, 0.0, 0.0, False),
    "flip": (1.0, 0.0, 0.0, True),
    "crop80": (0.8, 0.0, 0.0, False),
    "crop80_flip": (0.8, 0.0, 0.0, True),
    "crop80_tl": (0.8, -1.0, -1.0, False),
    "crop80_tr": (0.8, 1.0, -1.0, False),
    "crop80_bl": (0.8, -1.0, 1.0, False),
    "crop80_br": (0.8, 1.0, 1.0, False),
}
#: Values of ``IMAGE_QUERY_VIEWS`` / ``IMAGE_GALLERY_VIEWS``: the views whose features are averaged.
#: Grocery cold start (image kNN top-1, 296 shop-floor photos against 81 catalog photos): query
#: ``crop80_2`` + gallery ``crops6`` 0.436, + gallery ``flip2`` 0.409, both ``center`` 0.361 (README).
VIEW_SETS: dict[str, tuple[str, ...]] = {
    "center": ("center",),
    "flip2": ("center", "flip"),
    "crop80_2": ("crop80", "crop80_flip"),
    "crops6": ("center", "crop80", "crop80_tl", "crop80_tr", "crop80_bl", "crop80_br"),
}


def photo_view(image: Image.Image, view: str, size: int = INPUT_SIZE) -> Image.Image:
    """One view of an RGB photo: a ``size`` x ``size`` square (``center``: the centre square of the
    shorter side, as the encoder's own preprocessing crops it).

    Raises:
        ValueError: unknown view.
    """
    if view not in VIEWS:
        raise ValueError(f"Unknown photo view {view!r}; valid: {', '.join(VIEWS)}")
    scale, dx, dy, mirror = VIEWS[view]
    w, h = image.size
    side = min(w, h) * scale
    left, top = (w - side) / 2 * (1 + dx), (h - side) / 2 * (1 + dy)
    out = image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirror else out


def encode_views(encoder, images: Sequence[Image.Image], view_set: str = "center") -> ImageFeatures:
    """Features of each photo averaged over the views of ``view_set`` (test-time augmentation:
    Simonyan & Zisserman 2015, sec. 3.2, average crops and flips).

    Every view of every photo goes through ``encoder.encode`` in one call (one batch per photo
    for a single photo). Works with any :class:`mlmodels.types.ImageEncoder`.

    Args:
        encoder: the image encoder.
        images: RGB PIL photos.
        view_set: a key of :data:`VIEW_SETS`; ``"center"`` is the plain ``encoder.encode``.

    Returns:
        features ``(n, dim)`` float32: the L2-normalised mean of the views' L2-normalised features;
        logits ``(n, 1000)`` float32: the mean of the views' logits.

    Raises:
        ValueError: unknown view set.
    """
    if view_set not in VIEW_SETS:
        raise ValueError(f"Unknown photo view set {view_set!r}; valid: {', '.join(VIEW_SETS)}")
    views = VIEW_SETS[view_set]
    if views == ("center",):
        return encoder.encode(images)
    rgb = [img if img.mode == "RGB" else img.convert("RGB") for img in images]
    out = encoder.encode([photo_view(img, v) for img in rgb for v in views])
    k, n = len(views), len(rgb)
    feats = out.features.reshape(n, k, -1).mean(axis=1)
    feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    return ImageFeatures(feats.astype(np.float32), out.logits.reshape(n, k, -1).mean(axis=1).astype(np.float32))


def random_view(image: Image.Image, rng, size: int = INPUT_SIZE) -> Image.Image:
    """A random training view of a photo (augmentation): a square crop of 60-100 % of the shorter side
    at any position, a mirror image with odds 1/2, and a rotation of up to +-10 degrees (the border
    filled with the corner colour), ``size`` x ``size``.

    Args:
        image: an RGB photo.
        rng: a ``random.Random`` (seeded by the caller: the same seed gives the same view).
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    w, h = rgb.size
    side = min(w, h) * rng.uniform(0.6, 1.0)
    left, top = rng.uniform(0, w - side), rng.uniform(0, h - side)
    out = rgb.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR, fillcolor=out.getpixel((0, 0)))
