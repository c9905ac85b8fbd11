"""The writing side of one vector field of the embedded engine (see :mod:`search.backends._vectors`):
appending to the vector store, bulk inserts into an in-memory graph, and writing a new base."""

from __future__ import annotations

import os

import numpy as np

from search.backends._hnsw import CENTRED_FIELDS, Graph


class FieldWrites:
    """Mixin of :class:`search.backends._vectors._Field` (its attributes: ``folder``, ``name``, ``dim``,
    ``meta``, ``graph``, ``graph_mutable``, ``base``, ``ids``, ``rows``, ``shadow``, ``delta_ids``,
    ``delta``, ``store``, ``_log``). Writer side only: callers hold the engine's write lock."""

    def append_store(self, vectors: np.ndarray) -> np.ndarray:
        """Append ``(n, dim)`` vectors to the store file; returns their rows. Writer only."""
        start = int(self.meta.get("store_rows", 0))
        with open(self.store_path, "ab") as fh:
            if fh.tell() != start * self.dim * self.store_dtype.itemsize:  # a torn append from a crashed writer
                fh.truncate(start * self.dim * self.store_dtype.itemsize)
            np.ascontiguousarray(vectors, self.store_dtype).tofile(fh)
        self.meta["store_rows"] = start + len(vectors)
        self.store = self._map_store(self.meta["store_rows"])
        return np.arange(start, start + len(vectors), dtype=np.int64)

    # -- bulk writes (a new build, in memory until write_base) -----------------------------------
    def bulk_upsert(self, touched: np.ndarray, ids: np.ndarray, vectors: np.ndarray, size_hint: int, float16_min: int) -> None:
        """Every id in ``touched`` loses its vector; ``ids`` get ``vectors`` ``(n, dim)`` float32 (straight into the graph)."""
        if self.graph is None:
            if not len(ids):
                return
            self.graph = Graph.new(self.dim, max(size_hint, len(ids)), vectors, centred=self.name in CENTRED_FIELDS)
            self.graph_mutable = True
            if not self.meta.get("store_rows"):
                self.meta["store_dtype"] = "float16" if max(size_hint, len(ids)) >= float16_min else "float32"
        self.graph.remove(touched)
        rows = self.append_store(vectors) if len(ids) else np.zeros(0, np.int64)
        self.graph.add(ids, vectors)
        # an ordered log of (id, row); row -1 drops the id. The last entry per id wins (_settle).
        self._log.append((touched, np.full(len(touched), -1, np.int64)))
        self._log.append((ids, rows))

    def _settle(self) -> None:
        """Fold the bulk log into ``ids``/``rows`` (sorted by id)."""
        if not self._log:
            return
        all_ids = np.concatenate([self.ids] + [i for i, _ in self._log])
        all_rows = np.concatenate([self.rows] + [r for _, r in self._log])
        self._log = []
        last = len(all_ids) - 1 - np.unique(all_ids[::-1], return_index=True)[1]
        keep = last[all_rows[last] >= 0]
        self.ids, self.rows = all_ids[keep], all_rows[keep]

    def write_base(self, gen: int, size_hint: int, float16_min: int) -> dict:
        """Save a base holding every live vector as generation ``gen``; returns its manifest entry. Writer only."""
        self._settle()
        if len(self.delta_ids) or self.shadow:
            live_base = self.ids if not self.shadow else ~np.isin(self.ids, np.fromiter(self.shadow, np.int64, len(self.shadow)))
            if self.shadow:
                self.ids, self.rows = self.ids[live_base], self.rows[live_base]
            if self.graph is not None and not self.graph_mutable:
                self.graph = Graph.open(self.folder / f"base-{self.base}-{self.name}.usearch", self.meta, len(self.ids),
                                        centre=self.graph.centre, mutable=True)
                self.graph_mutable = True
            if self.graph is None and len(self.delta_ids):
                self.graph = Graph.new(self.dim, max(size_hint, len(self.delta_ids)), self.delta, centred=self.name in CENTRED_FIELDS)
                self.graph_mutable = True
                self.meta.setdefault("store_dtype", "float16" if max(size_hint, len(self.delta_ids)) >= float16_min else "float32")
            if self.graph is not None:
                self.graph.remove(np.fromiter(self.shadow, np.int64, len(self.shadow)))
                self.graph.add(self.delta_ids, self.delta)
            rows = self.append_store(self.delta)
            ids, rows = np.concatenate([self.ids, self.delta_ids]), np.concatenate([self.rows, rows])
            order = np.argsort(ids, kind="stable")
            self.ids, self.rows = ids[order], rows[order]
        meta = {**self.meta, "base_rows": len(self.ids), "ndim": self.dim}
        if self.graph is not None and len(self.ids):
            meta.update(self.graph.meta())
            target = self.folder / f"base-{gen}-{self.name}.usearch"
            if self.graph_mutable:
                self.graph.save(target)
            else:  # unchanged since the base: the same immutable file under the new name
                os.link(self.folder / f"base-{self.base}-{self.name}.usearch", target)
            extra = {} if self.graph.centre is None else {"centre": self.graph.centre}
            np.savez(self.folder / f"base-{gen}-{self.name}.ids.npz", ids=self.ids, rows=self.rows, **extra)
            self.graph = None  # the caller reopens the saved base memory-mapped: one field's graph in memory at a time
        else:
            meta["base_rows"] = 0
        return meta
