"""Synthetic catalogs for scale: real words recombined, vectors random or drawn around real ones.

Titles and descriptions are recombined from the real Flipkart and fashion catalogs in
``CATALOG_DIR`` (so BM25 sees a real vocabulary and real term statistics). Vectors are either
random unit vectors (``anchors=None``: kNN does the work it does at that scale, but neighbours
mean nothing and HNSW recall is at its worst) or, for the scale benchmark, drawn around real
encoder outputs (:func:`realistic_vectors`), so the space has the clusters and empty regions of
a real catalog and recall@10 against exact search means what it would in the shop. Seeded: the
same ``n`` always gives the same catalog, for our engine and the baseline.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0
DIMS = {"text": 384, "image": 1280, "fused": 384}
#: Characters kept from a recombined description (Flipkart descriptions run to ~2,000).
DESCRIPTION_CHARS = 600


@dataclass
class Vocabulary:
    titles: list[str]
    descriptions: list[str]
    brands: list[str]
    categories: list[list[str]]


def load_vocabulary(catalog_dir: Path) -> Vocabulary:
    """Titles, descriptions, brands and category paths of the real Flipkart and fashion catalogs."""
    titles, descriptions, brands, categories = [], [], [], []
    with (catalog_dir / "flipkart" / "products.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            titles.append(rec["product_name"].strip())
            if rec["description"].strip():
                descriptions.append(rec["description"].strip())
            if rec["brand"].strip():
                brands.append(rec["brand"].strip())
            tree = rec["product_category_tree"].strip('[]"').split(">>")
            categories.append([p.strip() for p in tree[:3] if p.strip() and not p.strip().endswith("...")])
    with (catalog_dir / "fashion" / "styles.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            if rec["productDisplayName"].strip():
                titles.append(rec["productDisplayName"].strip())
                brands.append(rec["productDisplayName"].split()[0])
            descriptions.append(" ".join(rec[k] for k in ("gender", "baseColour", "articleType", "usage", "season") if rec.get(k)))
            categories.append([rec["masterCategory"], rec["subCategory"], rec["articleType"]])
    return Vocabulary(titles, descriptions, brands, categories)


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


#: Norm of the Gaussian noise added around the anchor mixture, before re-normalising. 0.3 puts a
#: synthetic vector at cosine ~0.95 from its mixture: near-duplicates, as a large catalog has.
NOISE = 0.3


def realistic_vectors(rng: np.random.Generator, anchors, m: int) -> dict[str, np.ndarray]:
    """``m`` products' vectors, each field ``w * a + (1 - w) * b + noise`` (re-normalised) for two real
    products ``a``, ``b`` of ``anchors`` (:class:`bench.anchors.Anchors`) and ``w ~ U(0.5, 1)``; the
    same ``a``, ``b``, ``w`` for every field of a product, so its text, photo and fused vectors agree.

    Returns:
        field -> ``(m, dim)`` float32, L2-normalised.
    """
    a, b = rng.integers(len(anchors.text), size=(2, m))
    w = rng.uniform(0.5, 1.0, size=(m, 1)).astype(np.float32)
    out = {}
    for name in ("text", "image", "fused"):
        real = getattr(anchors, name)
        v = w * real[a] + (1 - w) * real[b]
        v += rng.standard_normal(v.shape, dtype=np.float32) * (NOISE / np.sqrt(v.shape[1]))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[name] = v
    return out


@dataclass
class SyntheticBatch:
    ids: np.ndarray
    titles: list[str]
    descriptions: list[str]
    brands: list[str]
    categories: list[list[str]]
    vectors: dict[str, np.ndarray]


def synthetic_batches(vocab: Vocabulary, n: int, batch: int = 5000, anchors=None) -> Iterator[SyntheticBatch]:
    """``n`` products in batches: title = half of one real title + half of another, description =
    two real descriptions spliced, brand and category drawn from the real ones; ids 1..n; vectors
    random (``anchors=None``) or :func:`realistic_vectors` around ``anchors``."""
    rng = np.random.default_rng(SEED)
    for start in range(0, n, batch):
        m = min(batch, n - start)
        t1, t2 = rng.integers(len(vocab.titles), size=(2, m))
        d1, d2 = rng.integers(len(vocab.descriptions), size=(2, m))
        b = rng.integers(len(vocab.brands), size=m)
        c = rng.integers(len(vocab.categories), size=m)
        titles, descriptions = [], []
        for i in range(m):
            a, z = vocab.titles[t1[i]].split(), vocab.titles[t2[i]].split()
            titles.append(" ".join(a[: max(1, len(a) // 2)] + z[len(z) // 2:]))
            da, dz = vocab.descriptions[d1[i]], vocab.descriptions[d2[i]]
            descriptions.append((da[: len(da) // 2] + " " + dz[len(dz) // 2:])[:DESCRIPTION_CHARS])
        yield SyntheticBatch(
            ids=np.arange(start + 1, start + m + 1, dtype=np.int64), titles=titles, descriptions=descriptions,
            brands=[vocab.brands[i] for i in b], categories=[vocab.categories[i] for i in c],
            vectors=({name: unit_vectors(rng, m, dim) for name, dim in DIMS.items()} if anchors is None
                     else realistic_vectors(rng, anchors, m)),
        )
