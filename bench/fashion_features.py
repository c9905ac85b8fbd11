"""Encoded features of the fashion catalog (``CATALOG_DIR/fashion``), cached in a ``.npz``.

Encoding 7.7k photos and texts takes a few minutes on 2 CPU cores; every experiment on the
fusion head reuses the cache. The text is what ``search.documents.document_text`` feeds the
encoder for an imported fashion product (title, category path, attribute description).

Run ``python bench/fashion_features.py`` to build the cache (``var/fashion-features.npz``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / "var" / "fashion-features.npz"
#: Photos decoded and encoded per chunk (progress lines; memory stays small).
CHUNK = 256


@dataclass(frozen=True)
class FashionFeatures:
    """Encoded fashion catalog, one row per product with a usable photo.

    Attributes:
        ids: ``(n,)`` product ids (``styles.csv`` ``id``).
        titles: ``(n,)`` product display names (identical titles share a group).
        gender, article_type, colour: ``(n,)`` attributes for graded relevance.
        text_vectors: ``(n, 384)`` MiniLM vectors of the document text.
        image_features: ``(n, 1280)`` EfficientNet-Lite0 pooled features.
        image_logits: ``(n, 1000)`` ImageNet logits (for the zero-shot bridge).
    """

    ids: np.ndarray
    titles: np.ndarray
    gender: np.ndarray
    article_type: np.ndarray
    colour: np.ndarray
    text_vectors: np.ndarray
    image_features: np.ndarray
    image_logits: np.ndarray


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()


def encode_fashion(folder: Path, cache: Path = DEFAULT_CACHE) -> FashionFeatures:
    """Encode (or load from ``cache``) every fashion product whose photo decodes."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return FashionFeatures(**{k: z[k] for k in FashionFeatures.__dataclass_fields__})
    setup_django()
    from mlmodels.images import ImageRejected, open_image
    from search.documents import compose_document_text
    from search.embedding.encoders import image_encoder, text_encoder
    from shop.importers import read_catalog

    rows = [r for r in read_catalog("fashion", folder) if not r.skip_reason]
    images, kept = [], []
    for r in rows:
        try:
            images.append(open_image(r.image_path).image)
            kept.append(r)
        except ImageRejected as exc:
            print(f"skip {r.external_id}: {exc.reason}", file=sys.stderr)
    t0 = time.perf_counter()
    texts = [compose_document_text(title=r.title, brand=r.brand, category_path=r.category_path, description=r.description) for r in kept]
    text_vectors = text_encoder().encode_document(texts)
    print(f"{len(texts)} texts encoded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    encoder = image_encoder()
    feats, logits = [], []
    t0 = time.perf_counter()
    for start in range(0, len(images), CHUNK):
        out = encoder.encode(images[start:start + CHUNK])
        feats.append(out.features)
        logits.append(out.logits)
        print(f"{start + len(out.features)}/{len(images)} photos, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    spec = [r.specifications for r in kept]
    data = FashionFeatures(
        ids=np.array([r.external_id for r in kept]),
        titles=np.array([r.title for r in kept]),
        gender=np.array([s.get("gender", "") for s in spec]),
        article_type=np.array([s.get("articleType", "") for s in spec]),
        colour=np.array([s.get("baseColour", "") for s in spec]),
        text_vectors=text_vectors,
        image_features=np.concatenate(feats),
        image_logits=np.concatenate(logits),
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **{k: getattr(data, k) for k in FashionFeatures.__dataclass_fields__})
    os.replace(tmp, cache)
    return data


if __name__ == "__main__":
    setup_django()
    from django.conf import settings

    d = encode_fashion(Path(settings.CATALOG_DIR) / "fashion")
    print(f"{len(d.ids)} products cached in {DEFAULT_CACHE}")
