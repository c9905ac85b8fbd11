"""Synthetic catalogs for scale: real words recombined, random unit vectors.

Titles and descriptions are recombined from the real Flipkart and fashion catalogs in
``CATALOG_DIR`` (so BM25 sees a real vocabulary and real term statistics), and every vector
field gets a random unit vector (so kNN does the work it does at that scale; the scores mean
nothing). Seeded: the same ``n`` always gives the same catalog, for our engine and the baseline.
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


@dataclass
class SyntheticBatch:
    ids: np.ndarray
    titles: list[str]
    descriptions: list[str]
    brands: list[str]
    categories: list[list[str]]
    vectors: dict[str, np.ndarray]


def synthetic_batches(vocab: Vocabulary, n: int, batch: int = 5000) -> Iterator[SyntheticBatch]:
    """``n`` products in batches: title = half of one real title + half of another, description =
    two real descriptions spliced, brand and category drawn from the real ones; ids 1..n."""
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
            vectors={name: unit_vectors(rng, m, dim) for name, dim in DIMS.items()},
        )
