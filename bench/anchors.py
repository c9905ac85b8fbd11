"""Real embeddings for the scale benchmark: product anchors and query encodings, cached on disk.

Synthetic catalogs (``bench/synthetic.py``) place their vectors around real ones, so that kNN at
1M products searches a space shaped like the shop's (clusters of near-duplicates, popular
regions, empty ones) and recall@10 means something. The anchors are real products of the shared
data encoded by the project's own encoders: Flipkart (title, brand, category, description and
its photo) and a seeded sample of the fashion catalog (display name, attributes and photo),
giving MiniLM text vectors ``(n, 384)``, EfficientNet-Lite0 features ``(n, 1280)`` and fused
vectors ``(n, dim)`` in the active fusion space, all float32 and L2-normalised.

The query set is real too: CrowdFlower shopper queries (text) and Flipkart photos cropped to
their centre 85 % and re-encoded as JPEG q80 (photo), each encoded once here with its wall time
recorded, so a benchmark can time the engine alone and add the measured encoding cost apart.

Both are cached under ``VAR_DIR`` keyed by the encoders' and the space's identity; encoding
takes a few minutes on two cores the first time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Fashion products sampled as anchors (beside all Flipkart products with a photo).
FASHION_ANCHORS = 2000
SEED = 0


@dataclass
class Anchors:
    """Real product vectors, row ``i`` of each array from the same product."""

    text: np.ndarray
    image: np.ndarray
    fused: np.ndarray


@dataclass
class QuerySet:
    """Encoded real queries and what encoding each one cost (ms, wall clock, one thread).

    ``photo_*`` rows pair with ``photo_text`` (a shopper's words for photo+text queries).
    """

    texts: list[str]
    text: np.ndarray
    text_fused: np.ndarray
    text_encode_ms: np.ndarray
    photo_image: np.ndarray
    photo_fused: np.ndarray
    photo_encode_ms: np.ndarray
    photo_text: list[str]
    both_text: np.ndarray
    both_fused: np.ndarray
    both_encode_ms: np.ndarray


def _cache_key() -> str:
    from search.embedding import encoders, encoding

    space = encoding.get_space()
    ident = [encoders.text_encoder().runtime, encoders.image_encoder().runtime, space.name, space.version, space.dim, FASHION_ANCHORS, SEED]
    return hashlib.sha1(json.dumps(ident, default=str).encode()).hexdigest()[:16]


def _anchor_rows(catalog_dir: Path) -> list[tuple[str, Path]]:
    """(document text, photo path) of the anchor products."""
    from search.documents import compose_document_text

    rows = []
    with (catalog_dir / "flipkart" / "products.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            photo = catalog_dir / "flipkart" / "images" / rec["image"].strip()
            if rec["image"].strip() and photo.is_file():
                tree = [p.strip() for p in rec["product_category_tree"].strip('[]"').split(">>")[:3] if p.strip()]
                rows.append((compose_document_text(title=rec["product_name"], brand=rec["brand"], category_path=tree,
                                                   description=rec["description"]), photo))
    fashion = []
    with (catalog_dir / "fashion" / "styles.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            photo = catalog_dir / "fashion" / "images" / f"{rec['id']}.jpg"
            if rec["productDisplayName"].strip() and photo.is_file():
                words = " ".join(rec[k] for k in ("gender", "baseColour", "articleType", "usage") if rec.get(k))
                fashion.append((compose_document_text(title=rec["productDisplayName"],
                                                       category_path=[rec["masterCategory"], rec["subCategory"], rec["articleType"]],
                                                      description=words), photo))
    pick = np.random.default_rng(SEED).choice(len(fashion), min(FASHION_ANCHORS, len(fashion)), replace=False)
    return rows + [fashion[i] for i in sorted(pick)]


def load_anchors(catalog_dir: Path, cache_dir: Path) -> Anchors:
    """The anchor vectors (encoded on first use, then read from ``cache_dir``)."""
    from PIL import Image

    from search.embedding import encoders, encoding

    path = cache_dir / f"anchors-{_cache_key()}.npz"
    if path.exists():
        with np.load(path) as z:
            return Anchors(z["text"], z["image"], z["fused"])
    rows = _anchor_rows(catalog_dir)
    text = encoders.text_encoder().encode_document([t for t, _ in rows])
    images = []
    for _, photo in rows:
        with Image.open(photo) as im:
            images.append(im.convert("RGB"))
    feats = encoders.image_encoder().encode(images)
    fused = encoding.fused_vectors(text, feats, space=encoding.get_space())
    anchors = Anchors(text.astype(np.float32), feats.features.astype(np.float32), fused.astype(np.float32))
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, text=anchors.text, image=anchors.image, fused=anchors.fused)
    return anchors


def _query_photos(catalog_dir: Path, n: int) -> list[bytes]:
    from PIL import Image

    out = []
    for path in sorted((catalog_dir / "flipkart" / "images").glob("*.jpg"))[:n]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            buf = io.BytesIO()
            im.crop((int(w * 0.075), int(h * 0.075), int(w * 0.925), int(h * 0.925))).save(buf, "JPEG", quality=80)
            out.append(buf.getvalue())
    return out


def _shopper_queries(catalog_dir: Path) -> list[str]:
    seen: dict[str, None] = {}
    with (catalog_dir / "crowdflower" / "train.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            seen.setdefault(rec["query"].strip().lower(), None)
    return list(seen)


def load_queries(catalog_dir: Path, cache_dir: Path, n_text: int = 200, n_photo: int = 100) -> QuerySet:
    """``n_text`` text, ``n_photo`` photo and ``n_photo`` photo+text queries, encoded once and cached.

    Encoding is timed per query after a warm-up, on one encoder thread (as a web worker runs),
    with each string new to the process (the query-vector cache never answers).
    """
    from django.conf import settings

    from mlmodels.images import open_image
    from search.embedding import encoding

    path = cache_dir / f"queries-{_cache_key()}-{n_text}-{n_photo}.npz"
    if path.exists():
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            return QuerySet(meta["texts"], z["text"], z["text_fused"], z["text_encode_ms"], z["photo_image"], z["photo_fused"],
                            z["photo_encode_ms"], meta["photo_text"], z["both_text"], z["both_fused"], z["both_encode_ms"])
    import torch

    torch.set_num_threads(1)
    words = _shopper_queries(catalog_dir)
    texts, photo_text = words[:n_text], [f"{w} sale" for w in words[n_text:n_text + n_photo]]
    photos = _query_photos(catalog_dir, n_photo)
    for i in range(3):  # warm up, not timed
        encoding.query_vectors(f"warm up {i}", encoding.encode_image_query(open_image(photos[0])))

    def encode(text, photo):
        t0 = time.perf_counter()
        feats = None
        if photo is not None:
            feats = encoding.encode_image_query(open_image(photo, max_bytes=settings.MAX_IMAGE_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS))
        v = encoding.query_vectors(text, feats)
        return v, (time.perf_counter() - t0) * 1000

    t_vecs, t_ms = zip(*(encode(t, None) for t in texts), strict=True)
    p_vecs, p_ms = zip(*(encode(None, p) for p in photos), strict=True)
    b_vecs, b_ms = zip(*(encode(t, p) for t, p in zip(photo_text, photos, strict=False)), strict=True)
    qs = QuerySet(
        texts, np.stack([v.text for v in t_vecs]), np.stack([v.fused for v in t_vecs]), np.array(t_ms),
        np.stack([v.image for v in p_vecs]), np.stack([v.fused for v in p_vecs]), np.array(p_ms),
        photo_text, np.stack([v.text for v in b_vecs]), np.stack([v.fused for v in b_vecs]), np.array(b_ms),
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, meta=json.dumps({"texts": texts, "photo_text": photo_text}), text=qs.text, text_fused=qs.text_fused,
             text_encode_ms=qs.text_encode_ms, photo_image=qs.photo_image, photo_fused=qs.photo_fused, photo_encode_ms=qs.photo_encode_ms,
             both_text=qs.both_text, both_fused=qs.both_fused, both_encode_ms=qs.both_encode_ms)
    return qs
