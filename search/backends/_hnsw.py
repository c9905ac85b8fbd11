"""HNSW graphs of the embedded engine (usearch), their parameters per scale, int8 quantisation.

The graph holds int8 copies of the vectors (a quarter of float32's memory; inserts about 2.7x
and searches about 2x faster than float16 with the same graph, measured on 30k clustered
384-d vectors) under cosine distance; its hits are candidates only, re-ranked by the caller with
the stored vectors, which lifts recall@10 back to float32's (0.966 -> 0.995 on that set).
usearch casts a float to int8 as ``round(127 x)`` clipped to [-1, 1], which leaves unit vectors of
many dimensions few levels (a 1280-d component is ~0.03); each field is therefore scaled by
``1 / max |component|`` of its first batch before the cast (cosine ignores the scale). Image
features (non-negative, all alike) are also centred on their first batch's mean before the cast:
graph recall@10 0.942 -> 0.960 on 20k photos; the same for MiniLM text vectors fell 0.96 -> 0.82
(queries and documents are not alike there), so only the fields in :data:`CENTRED_FIELDS`.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from pathlib import Path

import numpy as np

if sys.platform == "linux":
    # usearch's wheel (2.26.6) carries its own static libstdc++; a shared libstdc++ loaded after it
    # crashes in its locale set-up (SIGSEGV on `import usearch.index` then `import onnxruntime`, which
    # is what a process does when its index opens before its encoders load). Loaded first, with global
    # symbols, the shared one serves both. torch, loaded at start-up before encoders were lazy, did this.
    ctypes.CDLL("libstdc++.so.6", mode=ctypes.RTLD_GLOBAL)

from usearch.index import Index  # noqa: E402  (after the libstdc++ above)

#: (up to this many vectors, connectivity M, expansion_add = ef_construction, expansion_search = ef,
#: rerank = fewest graph candidates re-scored with the stored vectors per search). Chosen as the
#: cheapest measured setting with recall@10 >= 0.95 against exact search after re-ranking in every
#: field, filtered kNN included, on vectors drawn around real MiniLM / EfficientNet / fused vectors
#: (``bench/scale.py``, ``bench/scale_sweep.py``; bench/RESULTS.md "Scale"): weakest field 0.967 at
#: 10k, 0.962 at 100k (0.950 at ef 384), 0.958 at 1M. At 1M (M=16) text queries need the wide beam
#: (0.750 at ef 512, 0.899 at 2048, 0.929 at 4096): the graph, not the int8 copy, loses them;
#: images need the 200 re-ranked candidates (the int8 copy loses them). The last tier is not
#: measured. ``ef`` and ``rerank`` are read when an index is opened, so they can be changed without
#: a rebuild.
HNSW_TIERS: tuple[tuple[int, int, int, int, int], ...] = (
    (20_000, 16, 128, 256, 40),
    (200_000, 16, 128, 512, 40),
    (2_000_000, 16, 128, 8192, 200),
    (1 << 62, 32, 200, 8192, 200),
)
CENTRED_FIELDS = frozenset({"image"})


def hnsw_params(n: int) -> dict[str, int]:
    """HNSW parameters for a graph of ``n`` vectors: ``connectivity``, ``expansion_add``,
    ``expansion_search`` and ``rerank`` (fewest graph candidates re-ranked exactly per search)."""
    for upto, m, ef_add, ef_search, rerank in HNSW_TIERS:
        if n <= upto:
            return {"connectivity": m, "expansion_add": ef_add, "expansion_search": ef_search, "rerank": rerank}
    raise AssertionError("unreachable: the last tier has no upper bound")


def int8_scale(sample: np.ndarray) -> float:
    """Factor that maps the components of ``sample`` ``(n, dim)`` into [-1, 1] before the int8 cast."""
    peak = float(np.quantile(np.abs(sample), 0.9999)) if sample.size else 0.0
    return 1.0 / peak if peak > 0 else 1.0


class Graph:
    """One field's HNSW graph: usearch over int8, cosine, keys = product ids.

    Args:
        index: the usearch index.
        scale: factor applied to vectors before the int8 cast (see the module docstring).
        ef: search beam (``expansion_search``); raised to the candidate count when that is larger.
        centre: ``(dim,)`` float32 subtracted before the cast, or ``None``.
        rerank: fewest candidates a search asks for, to be re-ranked with the stored vectors
            (the tier's ``rerank``; the caller may ask for more).
    """

    def __init__(self, index: Index, scale: float, ef: int, centre: np.ndarray | None = None, rerank: int = 0):
        self.index, self.scale, self.ef, self.centre, self.rerank = index, scale, ef, centre, rerank
        # One search at a time per graph: the beam is set on the index before each search, and a
        # single-threaded usearch search reuses one scratch context (threaded web servers).
        self._lock = threading.Lock()

    @classmethod
    def new(cls, dim: int, expected: int, sample: np.ndarray, *, centred: bool = False) -> Graph:
        """An empty in-memory graph sized for ``expected`` vectors; ``sample`` ``(n, dim)`` sets the
        int8 scale (and the centre, when ``centred``)."""
        p = hnsw_params(expected)
        index = Index(ndim=dim, metric="cos", dtype="i8", connectivity=p["connectivity"], expansion_add=p["expansion_add"],
                      expansion_search=p["expansion_search"])
        centre = np.asarray(sample, np.float32).mean(0) if centred and len(sample) else None
        return cls(index, int8_scale(sample if centre is None else sample - centre), p["expansion_search"], centre, p["rerank"])

    @classmethod
    def open(cls, path: Path, meta: dict, live: int, *, centre: np.ndarray | None = None, mutable: bool = False) -> Graph:
        """The graph saved at ``path``: memory-mapped read-only, or loaded into memory when ``mutable``.
        The search beam and re-rank count are the tier's for ``live`` vectors (so they can be tuned without a rebuild)."""
        index = Index.restore(str(path), view=not mutable)
        if index is None:
            raise OSError(f"{path} is not a usearch index")
        p = hnsw_params(live)
        return cls(index, float(meta.get("scale", 1.0)), p["expansion_search"], centre, p["rerank"])

    def meta(self) -> dict:
        return {"scale": self.scale, "connectivity": int(self.index.connectivity), "expansion_add": int(self.index.expansion_add),
                "expansion_search": self.ef, "rerank": self.rerank, "centred": self.centre is not None}

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        v = np.asarray(vectors, np.float32)
        if self.centre is not None:
            v = v - self.centre
        return np.clip(v * self.scale, -1.0, 1.0)

    def __len__(self) -> int:
        return len(self.index)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert ``(n, dim)`` float32 vectors under ``ids`` (int64, not present), on every core."""
        if len(ids):
            self.index.add(np.asarray(ids, np.uint64), self._prepare(vectors), threads=0)

    def remove(self, ids: np.ndarray) -> None:
        """Remove those of ``ids`` that are in the graph."""
        ids = np.asarray(ids, np.uint64)
        if len(ids) and len(self.index):
            present = ids[np.asarray(self.index.contains(ids), bool).reshape(-1)]
            if len(present):
                self.index.remove(present)

    def search(self, vector: np.ndarray, count: int) -> np.ndarray:
        """Keys (int64) of the ``count`` nearest candidates of one ``(dim,)`` query, nearest first."""
        query = self._prepare(vector)
        with self._lock:
            self.index.expansion_search = max(self.ef, count)
            matches = self.index.search(query, count, threads=1)
        return np.asarray(matches.keys, np.int64)

    def save(self, path: Path) -> None:
        self.index.save(str(path))
