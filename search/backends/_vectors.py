"""kNN half of the embedded engine: per vector field an HNSW graph (usearch, int8) over a vector store.

A build's ``vectors/`` directory holds, per field:

* ``store-<field>.bin``: the vectors, one row per stored version (append-only; float32, or
  float16 for large builds, see :data:`STORE_FLOAT16_MIN`), memory-mapped by every process;
* ``base-<gen>-<field>.usearch``: the HNSW graph of the *base* over int8 copies of the vectors,
  memory-mapped read-only (``Index.restore(view=True)``), so reader processes share one copy in
  the page cache instead of each holding its own;
* ``base-<gen>-<field>.ids.npz``: the base's ids (sorted) and their store rows;

plus small append-only *segments* (``seg-<gen>.npz``: upserted vectors, deleted ids) and
``manifest.json`` naming the base and the segments, replaced atomically. A writer (holding the
engine's lock) appends a segment per batch; readers keep the segments since the base in a small
in-memory *delta* (searched exactly) and drop base hits the delta supersedes or deletes, so a
web process sees a worker's writes at its next manifest check without rereading the index. When
the delta grows past :data:`DELTA_MAX_ROWS` vectors or :data:`COMPACT_AFTER_SEGMENTS`
segments, the writer folds it into a new base.

Search: candidates from the int8 graph (or every vector, when few), re-ranked by exact inner
products with the stored vectors, so scores are cosine similarities of the stored vectors. A
*bulk* index (a rebuild's new build, read by no one else until the swap) skips segments:
vectors go straight into an in-memory graph on every core and the base is written once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from search.backends._hnsw import Graph
from search.backends._vector_writes import FieldWrites
from search.backends.base import Hit, SearchDocument

logger = logging.getLogger(__name__)

#: Up to this many live vectors an unfiltered search is exact (a matrix product over the store).
EXACT_UNFILTERED_MAX = 2048
#: At or below this many candidates after filters, search is exact over them.
EXACT_SEARCH_MAX = 20_000
#: Graph candidates re-ranked with stored vectors: max(RERANK_MIN, the graph's tier ``rerank``
#: (``_hnsw.HNSW_TIERS``), RERANK_FACTOR x k).
RERANK_MIN = 40
RERANK_FACTOR = 2.0
#: A reader's in-memory delta (searched exactly) is folded into the base past this many vectors...
DELTA_MAX_ROWS = 4096
#: ...or this many segments.
COMPACT_AFTER_SEGMENTS = 64
#: Builds of at least this many vectors keep their store in float16: half the memory, scores within
#: 1e-3 and recall@10 still >= 0.95 (tests/backends/test_knn_recall.py, test_embedded_scale.py);
#: smaller ones in float32 (exact scores).
STORE_FLOAT16_MIN = 250_000
#: A bulk build adds buffered vectors to its graphs in batches of this many (on all cores).
BULK_FLUSH = 16_384
MANIFEST = "manifest.json"
#: Exact scores are one query times up to EXACT_SEARCH_MAX rows, on one BLAS thread. OpenBLAS's
#: default (a thread per core) made a 1,000 x 1,280 product take 8 ms of CPU instead of 0.08 ms on
#: the busy 2-core machine (its threads spin waiting for each other); limiting costs ~8 us a call.
_BLAS = ThreadpoolController()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _top(ids: np.ndarray, sims: np.ndarray, k: int) -> list[Hit]:
    k = min(k, len(ids))
    if k <= 0:
        return []
    top = np.argpartition(-sims, k - 1)[:k] if k < len(ids) else np.arange(len(ids))
    top = top[np.argsort(-sims[top], kind="stable")]
    return [Hit(int(ids[j]), float(sims[j])) for j in top]


class _Field(FieldWrites):
    """One vector field: base (graph + ids -> store rows) plus the delta of later segments.

    ``ids`` (sorted int64) are the base's ids and ``rows`` their rows in the store; ``shadow``
    holds base ids deleted or superseded since the base; ``delta_ids``/``delta`` the vectors
    upserted since the base, ``(m, dim)`` float32.
    """

    def __init__(self, folder: Path, name: str, dim: int, meta: dict | None, base: int, *, mutable: bool = False):
        self.folder, self.name, self.dim = folder, name, dim
        self.meta = dict(meta or {})
        self.graph: Graph | None = None
        self.base, self.graph_mutable = base, mutable
        self._log: list[tuple[np.ndarray, np.ndarray]] = []
        self.ids = np.zeros(0, np.int64)
        self.rows = np.zeros(0, np.int64)
        if base >= 0 and self.meta.get("base_rows"):
            with np.load(folder / f"base-{base}-{name}.ids.npz") as z:
                self.ids, self.rows = z["ids"], z["rows"]
                self.centre = z.get("centre", None)
            self.graph = Graph.open(folder / f"base-{base}-{name}.usearch", self.meta, len(self.ids), centre=self.centre, mutable=mutable)
        self.store = self._map_store(self.meta.get("store_rows", 0))
        self.shadow: set[int] = set()
        self.delta_ids = np.zeros(0, np.int64)
        self.delta = np.zeros((0, dim), np.float32)

    # -- the store ------------------------------------------------------------------------------
    @property
    def store_path(self) -> Path:
        return self.folder / f"store-{self.name}.bin"

    @property
    def store_dtype(self) -> np.dtype:
        return np.dtype(self.meta.get("store_dtype", "float32"))

    def _map_store(self, n_rows: int) -> np.ndarray:
        if n_rows == 0:
            return np.zeros((0, self.dim), self.store_dtype)
        return np.memmap(self.store_path, dtype=self.store_dtype, mode="r", shape=(n_rows, self.dim))

    # -- membership -----------------------------------------------------------------------------
    def _base_rows_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of ``ids`` live in the base, their store rows)."""
        pos = np.searchsorted(self.ids, ids)
        pos[pos >= len(self.ids)] = 0
        hit = (self.ids[pos] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        if self.shadow:
            hit &= ~np.isin(ids, np.fromiter(self.shadow, np.int64, len(self.shadow)))
        return hit, self.rows[pos[hit]]

    def live_count(self) -> int:
        self._settle()
        return len(self.ids) - len(self.shadow) + len(self.delta_ids)

    def live_ids(self) -> np.ndarray:
        self._settle()
        base = self.ids if not self.shadow else self.ids[~np.isin(self.ids, np.fromiter(self.shadow, np.int64, len(self.shadow)))]
        return np.concatenate([base, self.delta_ids])

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the ids of ``ids`` that are live, their vectors as ``(n, dim)`` float32), base ones first."""
        self._settle()
        ids = np.asarray(ids, np.int64)
        in_delta = np.isin(ids, self.delta_ids)
        in_base, rows = self._base_rows_of(ids[~in_delta])
        found = np.concatenate([ids[~in_delta][in_base], ids[in_delta]])
        base_vecs = np.asarray(self.store[rows], np.float32).reshape(-1, self.dim)
        if not in_delta.any():
            return found, base_vecs
        order = np.argsort(self.delta_ids)
        delta_rows = order[np.searchsorted(self.delta_ids, ids[in_delta], sorter=order)]
        return found, np.concatenate([base_vecs, self.delta[delta_rows]])

    # -- writes into the delta (reader side of a segment) ------------------------------------------
    def apply(self, touched: np.ndarray, ids: np.ndarray, vectors: np.ndarray) -> None:
        """A segment: every id in ``touched`` loses its old vector; ``ids`` get ``vectors``."""
        touched = np.union1d(touched, ids)
        keep = ~np.isin(self.delta_ids, touched)
        self.delta_ids = np.concatenate([self.delta_ids[keep], ids])
        self.delta = np.concatenate([self.delta[keep], np.asarray(vectors, np.float32).reshape(-1, self.dim)])
        in_base = np.isin(touched, self.ids)
        self.shadow.update(int(i) for i in touched[in_base])

    # -- search ---------------------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int, allowed: set[int] | None) -> list[Hit]:
        self._settle()
        if allowed is not None and len(allowed) <= EXACT_SEARCH_MAX:
            ids, vecs = self.vectors(np.fromiter(allowed, np.int64, len(allowed)))
            return _top(ids, vecs @ vector, k)
        if self.graph is None or self.live_count() <= EXACT_UNFILTERED_MAX:
            ids, vecs = self.vectors(self.live_ids())
            if allowed is not None:
                keep = np.isin(ids, np.fromiter(allowed, np.int64, len(allowed)))
                ids, vecs = ids[keep], vecs[keep]
            return _top(ids, vecs @ vector, k)
        hits = self._graph_search(vector, k, allowed)
        if len(self.delta_ids):
            ok = np.ones(len(self.delta_ids), bool) if allowed is None else np.isin(self.delta_ids, np.fromiter(allowed, np.int64, len(allowed)))
            hits = sorted(hits + _top(self.delta_ids[ok], self.delta[ok] @ vector, k), key=lambda h: -h.score)[:k]
        return hits

    def _graph_search(self, vector: np.ndarray, k: int, allowed: set[int] | None) -> list[Hit]:
        """Base hits: graph candidates (over-fetched past shadowed and filtered-out ids), re-ranked exactly.

        The candidate count starts at ``RERANK_FACTOR x k`` divided by the filter's share of the
        catalog (at least RERANK_MIN and the graph's tier ``rerank``) and grows 4x until ``k`` candidates pass; a filter too selective for that (more
        than ``8 x EXACT_SEARCH_MAX`` candidates) is answered exactly over its ids.
        """
        n_base = len(self.ids)
        share = 1.0 if allowed is None else min(1.0, max(len(allowed) / max(self.live_count(), 1), 1e-6))
        want = max(RERANK_MIN, self.graph.rerank, math.ceil(RERANK_FACTOR * k / share)) + len(self.shadow)
        while True:
            want = min(want, n_base)
            keys = self.graph.search(vector, want)
            ok = np.ones(len(keys), bool)
            if self.shadow:
                ok &= np.fromiter((int(i) not in self.shadow for i in keys), bool, len(keys))
            if allowed is not None:
                ok &= np.fromiter((int(i) in allowed for i in keys), bool, len(keys))
            if ok.sum() >= k or want >= n_base:
                break
            if allowed is not None and want >= 8 * EXACT_SEARCH_MAX:
                ids, vecs = self.vectors(np.fromiter(allowed, np.int64, len(allowed)))
                return _top(ids, vecs @ vector, k)
            want *= 4
        keys = keys[ok]
        _, rows = self._base_rows_of(keys)
        return _top(keys, np.asarray(self.store[rows], np.float32) @ vector, k)


class VectorIndex:
    """All vector fields of one build directory.

    Args:
        path: the build's ``vectors/`` directory.
        dims: field -> dimension.
        bulk: a new build no other process reads yet: writes go straight into in-memory graphs
            (no segments) until :meth:`compact` writes the base.
        size_hint: expected number of vectors per field (a bulk build sizes its graphs by it).
    """

    def __init__(self, path: Path, dims: dict[str, int], *, bulk: bool = False, size_hint: int = 0):
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        self.dims = dims
        self.bulk = bulk
        self.size_hint = size_hint
        self.generation = -1
        self.base = -1
        self.applied: list[str] = []
        self.fields: dict[str, _Field] = {}
        self._pending: list[tuple[Sequence[SearchDocument], Sequence[int]]] = []
        self._pending_n = 0
        self.catch_up()

    @staticmethod
    def stored_dims(path: Path) -> dict[str, int] | None:
        """Field dimensions recorded in the manifest under ``path``, or ``None`` for a new index."""
        try:
            return json.loads((path / MANIFEST).read_text()).get("dims")
        except FileNotFoundError:
            return None

    # -- manifest ---------------------------------------------------------------------------------
    def _read_manifest(self) -> dict:
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except FileNotFoundError:
            return {"generation": 0, "base": -1, "segments": [], "dims": self.dims, "fields": {}}

    def _write_manifest(self, manifest: dict) -> None:
        _atomic_write_bytes(self.path / MANIFEST, json.dumps(manifest).encode())

    def catch_up(self) -> bool:
        """Bring the in-memory view up to the manifest on disk. Returns True if anything changed."""
        if self.bulk:
            self._flush()
        manifest = self._read_manifest()
        if manifest["generation"] == self.generation:
            return False
        stored_dims = manifest.get("dims", self.dims)
        if stored_dims != self.dims:
            # a build made before an encoder was added serves its fields until a reindex adds the new one
            if not (set(stored_dims) < set(self.dims) and all(self.dims[f] == d for f, d in stored_dims.items())):
                raise ValueError(
                    f"Index at {self.path} was built with vector dims {stored_dims}, the encoders give {self.dims}; run `manage.py reindex`"
                )
            logger.warning("Index at %s has no vector field %s; searching without it until `manage.py reindex` builds it",
                           self.path, ", ".join(sorted(set(self.dims) - set(stored_dims))))
            self.dims = dict(stored_dims)
        if not self.fields or manifest["base"] != self.base or self.applied != manifest["segments"][: len(self.applied)]:
            self._load_base(manifest)
        for seg in manifest["segments"][len(self.applied):]:
            try:
                self._apply_segment(seg)
            except FileNotFoundError:  # compacted away under us: start from the new base
                return self.catch_up_from_scratch()
        self.generation = manifest["generation"]
        return True

    def catch_up_from_scratch(self) -> bool:
        # Dropping the in-memory view forces a reload: after clear() the manifest's base (-1)
        # and segments ([]) equal the reset values, so the old view would otherwise survive.
        self.generation, self.base, self.applied, self.fields = -1, -1, [], {}
        return self.catch_up()

    def _load_base(self, manifest: dict) -> None:
        self.applied, self.base = [], manifest["base"]
        metas = manifest.get("fields", {})
        self.fields = {name: _Field(self.path, name, dim, metas.get(name), self.base, mutable=self.bulk) for name, dim in self.dims.items()}

    def _apply_segment(self, name: str) -> None:
        with np.load(self.path / name) as seg:
            touched = np.union1d(seg["upserted"], seg["deleted"]).astype(np.int64)
            for field_name, f in self.fields.items():
                ids = seg[f"{field_name}_ids"] if f"{field_name}_ids" in seg else np.zeros(0, np.int64)
                f.apply(touched, ids.astype(np.int64), seg[f"{field_name}_vectors"] if len(ids) else np.zeros((0, f.dim), np.float32))
        self.applied.append(name)

    def _arrays(self, upserts: Sequence[SearchDocument], deletes: Sequence[int]) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "upserted": np.array([d.id for d in upserts], dtype=np.int64),
            "deleted": np.array(list(deletes), dtype=np.int64),
        }
        for name, dim in self.dims.items():
            docs = [d for d in upserts if d.vectors.get(name) is not None]
            arrays[f"{name}_ids"] = np.array([d.id for d in docs], dtype=np.int64)
            arrays[f"{name}_vectors"] = (
                np.stack([np.asarray(d.vectors[name], np.float32).reshape(dim) for d in docs]) if docs else np.zeros((0, dim), np.float32)
            )
        return arrays

    # -- writes (caller holds the engine's write lock) ---------------------------------------------
    def write(self, upserts: Sequence[SearchDocument], deletes: Sequence[int]) -> None:
        if self.bulk:
            self._pending.append((upserts, deletes))
            self._pending_n += len(upserts) + len(deletes)
            if self._pending_n >= BULK_FLUSH:
                self._flush()
            return
        self.catch_up()
        manifest = self._read_manifest()
        gen = manifest["generation"] + 1
        arrays = self._arrays(upserts, deletes)
        seg_name = f"seg-{gen}.npz"
        tmp = self.path / f".tmp-{seg_name}"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, self.path / seg_name)
        manifest.update(generation=gen, segments=manifest["segments"] + [seg_name], dims=self.dims)
        self._write_manifest(manifest)
        self.catch_up()
        delta = max(len(f.delta_ids) + len(f.shadow) for f in self.fields.values())
        if len(manifest["segments"]) >= COMPACT_AFTER_SEGMENTS or delta > DELTA_MAX_ROWS:
            self.compact()

    def _flush(self) -> None:
        """Bulk mode: add the buffered writes to the in-memory graphs and the stores."""
        if not self._pending:
            return
        upserts = [d for batch, _ in self._pending for d in batch]
        deletes = [i for _, batch in self._pending for i in batch]
        self._pending, self._pending_n = [], 0
        if not self.fields:
            self._load_base(self._read_manifest())
        arrays = self._arrays(upserts, deletes)
        touched = np.union1d(arrays["upserted"], arrays["deleted"])
        for name, f in self.fields.items():
            f.bulk_upsert(touched, arrays[f"{name}_ids"], arrays[f"{name}_vectors"], self.size_hint, STORE_FLOAT16_MIN)

    def compact(self) -> None:
        """Write a new base holding every live vector, drop the segments (caller holds the write lock)."""
        self.catch_up()
        manifest = self._read_manifest()
        gen = manifest["generation"] + 1
        metas = {}
        for name, f in self.fields.items():
            metas[name] = f.write_base(gen, self.size_hint, STORE_FLOAT16_MIN)
        old = manifest
        self._write_manifest({"generation": gen, "base": gen, "segments": [], "dims": self.dims, "fields": metas})
        for seg in old["segments"]:
            (self.path / seg).unlink(missing_ok=True)
        for name in self.dims:
            for suffix in (".usearch", ".ids.npz"):
                (self.path / f"base-{old['base']}-{name}{suffix}").unlink(missing_ok=True)
        self.bulk = False
        self.catch_up_from_scratch()

    def clear(self) -> None:
        manifest = self._read_manifest()
        self._pending, self._pending_n = [], 0
        self._write_manifest({"generation": manifest["generation"] + 1, "base": -1, "segments": [], "dims": self.dims, "fields": {}})
        for pattern in ("seg-*.npz", "base-*", "store-*"):
            for p in self.path.glob(pattern):
                p.unlink(missing_ok=True)
        self.catch_up_from_scratch()

    # -- reads -----------------------------------------------------------------------------------
    def search(self, field: str, vector: np.ndarray, k: int, allowed: set[int] | None) -> list[Hit]:
        self._flush()
        with _BLAS.limit(limits=1, user_api="blas"):
            return self.fields[field].search(vector, k, allowed)

    def get(self, field: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        self._flush()
        found, vecs = self.fields[field].vectors(np.asarray([int(i) for i in ids], np.int64))
        return {int(i): v for i, v in zip(found, vecs, strict=True)}

    def size(self, field: str) -> int:
        self._flush()
        return self.fields[field].live_count()

