"""Embedded engine (the default): BM25 by tantivy plus kNN by usearch (HNSW), in files on this machine.

Layout under ``INDEX_DIR``::

    products            -> products-20261129T233000123456   (the alias: a symlink)
    products-<stamp>/   bm25/ (tantivy)  vectors/ (see _vectors.py)  space.json (fusion space)
                        complete.json (written when the build is swapped in)  .building (flock)
    .write.lock         one writer at a time, across processes

Many processes read (web workers), one writes at a time (a Celery worker, a command). A reader
checks the alias and the indexes' generation at most every ``REFRESH_INTERVAL_S`` and catches
up incrementally, so a worker's writes are visible to the web within about a second. A rebuild
fills a new ``products-<stamp>`` directory and swaps the symlink atomically (``rename(2)``).

Only a complete build is ever kept for rollback: ``complete.json`` is written into a build just
before it is swapped in (and into the live build, which was complete when it went live), and
pruning keeps the newest complete previous builds. A build without it is a leftover of a
rebuild that died (e.g. SIGKILL) and is deleted, unless its builder still holds the flock on
its ``.building`` file (a rebuild in progress in another process).

Each build keeps the vector dimensions it was created with and records the fusion space of its
fused vectors (``space.json``), so a new fusion head with another dimension is served only once
a rebuild made with it has been swapped in; until then readers keep the old build's dims.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from django.conf import settings

from search.backends._bm25 import BM25Index
from search.backends._spelling import Speller
from search.backends._vectors import VectorIndex
from search.backends.base import BaseSearchBackend, Hit, SearchDocument, SearchFilters, SearchUnavailable

logger = logging.getLogger(__name__)

#: How often a reader looks for writes by other processes (s). A stat() of two files: cheap.
REFRESH_INTERVAL_S = 0.5
#: Previous builds kept beside the live one (for rollback and for readers still on them).
KEEP_BUILDS = 1
#: Longest wait for the write lock (s) before the write fails as transient (Celery retries it).
#: A backend's ``LOCK_TIMEOUT`` param overrides it.
LOCK_TIMEOUT_S = 60.0
#: Upper bound on ids fetched for a filtered kNN; filters on a 100k catalog stay below it.
MAX_FILTERED_IDS = 1_000_000
#: Longest a spelling vocabulary is kept before it is read again from the index (s); a new build,
#: or a change in the number of documents, reads it at once.
SPELLING_REFRESH_S = 300.0
SPACE_FILE = "space.json"
COMPLETE_FILE = "complete.json"
BUILDING_FILE = ".building"


_held = threading.local()  # write-lock depth per index root, per thread


class IndexLocked(SearchUnavailable):
    """Another process held the write lock for longer than ``LOCK_TIMEOUT_S`` (transient)."""


class _Build:
    """The open indexes of one build directory.

    A build keeps the fused dimension it was made with (the fusion head's), whatever ``dims``
    says; text and image dimensions must match ``dims`` (else a ValueError asks for a reindex).
    """

    def __init__(self, path: Path, dims: dict[str, int], boosts: dict[str, float], *, bulk: bool = False, size_hint: int = 0):
        self.path = path
        try:
            self.space: dict | None = json.loads((path / SPACE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.space = None
        self.bm25 = BM25Index(path / "bm25", boosts, bulk=bulk)
        stored = VectorIndex.stored_dims(path / "vectors") or {}
        if "fused" in stored and "fused" in dims:
            dims = {**dims, "fused": stored["fused"]}
        self.vectors = VectorIndex(path / "vectors", dims, bulk=bulk, size_hint=size_hint)

    def write(self, upserts: Sequence[SearchDocument], deletes: Sequence[int]) -> None:
        self.bm25.write(upserts, deletes)
        self.vectors.write(upserts, deletes)

    def catch_up(self) -> None:
        self.bm25.reload()
        self.vectors.catch_up()


class EmbeddedSearchBackend(BaseSearchBackend):
    """tantivy (BM25) + usearch HNSW (kNN) under ``params["INDEX_DIR"]``; see the module docstring.

    Capabilities: term analysis (tantivy's analyser). Rank fusion runs in ``search.hybrid`` over
    the lists this engine returns (no server-side fusion, no multi-search: every retrieval is a
    call in this process); no facets, highlights or score explanations.
    """

    supports_term_analysis = True
    reports_term_coverage = True

    def __init__(
        self, params: dict, vector_dims: dict[str, int], *, space: dict | None = None, build_dir: Path | None = None, size_hint: int = 0,
    ):
        super().__init__(params, vector_dims, space=space)
        self.root = Path(params["INDEX_DIR"])
        self.alias = self.root / params.get("INDEX", "products")
        self.boosts = dict(params.get("FIELD_BOOSTS") or settings.SEARCH_FIELD_BOOSTS)
        self.lock_timeout = float(params.get("LOCK_TIMEOUT") or LOCK_TIMEOUT_S)
        self._pinned = build_dir  # a backend writing into a build being rebuilt (bulk writes, read by no one else)
        self._size_hint = size_hint
        self._configured_dims = dict(vector_dims)  # what the encoders give; a build may hold fewer fields
        self._build: _Build | None = None
        self._checked = 0.0
        self._speller: tuple[tuple, float, Speller] | None = None
        self._mutex = threading.RLock()
        self.root.mkdir(parents=True, exist_ok=True)

    # -- build directories and the alias -----------------------------------------------------------
    def _target(self) -> Path:
        if self._pinned is not None:
            return self._pinned
        if not self.alias.exists():
            with self._write_lock():
                if not self.alias.exists():
                    first = self._new_build_dir(self._initial_space())
                    _Build(first, self.vector_dims, self.boosts)
                    _mark_complete(first, documents=0)
                    self._swap_alias(first)
        return self.alias.resolve()

    def _initial_space(self) -> dict | None:
        """The fusion space to record with a first build: the one this backend was given, if its dimension is ours."""
        space = self.initial_space
        return space if space is not None and space.get("dim") == self.vector_dims.get("fused") else None

    def _new_build_dir(self, space: dict | None = None) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.root / f"{self.alias.name}-{stamp}"
        path.mkdir(parents=True)
        if space is not None:
            (path / SPACE_FILE).write_text(json.dumps(space), encoding="utf-8")
        return path

    def _swap_alias(self, build: Path) -> None:
        tmp = self.root / f".{self.alias.name}.swap"
        tmp.unlink(missing_ok=True)
        os.symlink(build.name, tmp)
        os.replace(tmp, self.alias)

    def _open(self, force: bool = False) -> _Build:
        with self._mutex:
            now = time.monotonic()
            if self._build is not None and not force and now - self._checked < REFRESH_INTERVAL_S:
                return self._build
            self._checked = now
            target = self._target()
            try:
                if self._build is None or self._build.path != target:
                    self._build = _Build(target, self._configured_dims, self.boosts, bulk=self._pinned is not None, size_hint=self._size_hint)
                    self.vector_dims = dict(self._build.vectors.dims)
                else:
                    self._build.catch_up()
            except (OSError, ValueError) as exc:
                if isinstance(exc, ValueError) and "reindex" in str(exc):
                    raise
                raise SearchUnavailable(f"The search index at {target} cannot be opened: {exc}") from exc
            return self._build

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Exclusive across processes (flock) and re-entrant within a thread."""
        key = str(self.root)
        depth = getattr(_held, key, 0)
        if depth:
            setattr(_held, key, depth + 1)
            try:
                yield
            finally:
                setattr(_held, key, depth)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".write.lock", "a+") as fh:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise IndexLocked(f"The search index write lock was busy for {self.lock_timeout:g} s") from None
                    time.sleep(0.05)
            setattr(_held, key, 1)
            try:
                yield
            finally:
                setattr(_held, key, 0)
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- writing -----------------------------------------------------------------------------------
    def reset_index(self) -> None:
        with self._write_lock():
            build = self._open(force=True)
            build.bm25.clear()
            build.vectors.clear()

    def add_bulk(self, docs: Sequence[SearchDocument]) -> None:
        if not docs:
            return
        self._open()  # vector dims are the live build's
        for doc in docs:
            for name, vec in doc.vectors.items():
                if vec is not None:
                    self._check_vector(name, vec)
        self._write(list(docs), [])

    def delete(self, ids: Sequence[int]) -> None:
        if ids:
            self._write([], [int(i) for i in ids])

    def _write(self, upserts: list[SearchDocument], deletes: list[int]) -> None:
        lock = contextlib.nullcontext() if self._pinned is not None else self._write_lock()
        with lock:
            self._open(force=True).write(upserts, deletes)

    def refresh(self) -> None:
        self._open(force=True)

    @contextlib.contextmanager
    def rebuild(self, *, before_swap=None, keep: int | None = None, vector_dims=None, space=None,
                size_hint: int | None = None) -> Iterator[EmbeddedSearchBackend]:
        """See :meth:`BaseSearchBackend.rebuild`. The new build is written in bulk (vectors straight
        into in-memory HNSW graphs on every core, BM25 committed in large batches) and sized for
        ``size_hint`` products (default: the live index's count), which picks its HNSW parameters."""
        if space is None and vector_dims is None:  # same vectors as the live build: keep its record
            space = self.index_space()
        if size_hint is None:
            size_hint = self.count() if self.alias.exists() else 0
        with self._write_lock():  # so that a prune elsewhere never sees the new folder unclaimed
            _mark_complete(self._target(), documents=None)  # it is live, so it was complete
            new_dir = self._new_build_dir(space)
            building = open(new_dir / BUILDING_FILE, "a+")  # noqa: SIM115 (held until the build ends)
            fcntl.flock(building, fcntl.LOCK_EX)
        builder = EmbeddedSearchBackend(self.params, vector_dims or self.vector_dims, build_dir=new_dir, size_hint=size_hint)
        try:
            yield builder
            with self._write_lock():
                if before_swap is not None:
                    before_swap(builder)
                built = builder._open(force=True)
                built.bm25.finish()
                built.vectors.compact()
                _mark_complete(new_dir, documents=built.bm25.count())
                self._swap_alias(new_dir)
        except BaseException:
            if builder._build is not None:
                builder._build.bm25.abort()  # its writer threads would recreate files in the folder
            shutil.rmtree(new_dir, ignore_errors=True)
            raise
        finally:
            building.close()
        self._prune(KEEP_BUILDS if keep is None else keep)
        self._open(force=True)

    def previous_builds(self) -> list[tuple[str, bool]]:
        """Every build folder of this index other than the live one, oldest first, with whether it is complete."""
        live = self.alias.resolve()
        found = sorted(p for p in self.root.glob(f"{self.alias.name}-*") if p.is_dir() and p != live)
        return [(p.name, (p / COMPLETE_FILE).is_file()) for p in found]

    def _prune(self, keep: int = KEEP_BUILDS) -> None:
        """Keep the newest ``keep`` complete previous builds; delete older ones and dead incomplete ones."""
        with self._write_lock():
            builds = self.previous_builds()
            complete = [name for name, done in builds if done]
            doomed = complete[: max(0, len(complete) - keep)]
            doomed += [name for name, done in builds if not done and not _being_built(self.root / name)]
            for name in doomed:
                logger.info("Deleting index build %s (%s)", name, "older than the kept ones" if name in complete else "incomplete")
                shutil.rmtree(self.root / name, ignore_errors=True)

    # -- reading -----------------------------------------------------------------------------------
    def search_text(self, query: str | None, *, filters: SearchFilters | None = None, limit: int = 100) -> list[Hit]:
        return self._open().bm25.search(query, filters, limit)

    def search_vector(self, field: str, vector: np.ndarray, *, filters: SearchFilters | None = None, k: int = 100) -> list[Hit]:
        build = self._open()
        vector = self._check_vector(field, vector)
        allowed = None
        if filters is not None and not filters.is_empty:
            allowed = set(build.bm25.filtered_ids(filters, MAX_FILTERED_IDS))
        return build.vectors.search(field, vector, k, allowed)

    def count(self) -> int:
        return self._open().bm25.count()

    def served_vector_fields(self) -> frozenset[str]:
        return frozenset(self._open().vectors.dims)

    def ids(self) -> set[int]:
        return self._open().bm25.ids()

    def get_vectors(self, field: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        build = self._open()
        self._check_vector(field, np.zeros(self.vector_dims.get(field, 0), np.float32))
        return build.vectors.get(field, ids)

    def index_space(self) -> dict | None:
        return self._open().space

    def terms(self, text: str) -> list[str]:
        """Analysed BM25 terms of ``text`` (tantivy's English analyser; used to tell a shopper their query had only stop words)."""
        return self._open().bm25.terms(text)

    def known_words(self, words: Sequence[str]) -> set[str]:
        return self._open().bm25.known_words(words)

    def spelling_suggestions(self, words: Sequence[str], *, context: Sequence[str] = ()) -> dict[str, str]:
        """See :meth:`BaseSearchBackend.spelling_suggestions`: SymSpell over the live build's
        vocabulary, equally close candidates weighed by how many documents hold them with ``context``."""
        if not words:
            return {}
        bm25 = self._open().bm25
        others = [w for w in context if w not in words]
        return self._spelling().suggest(words, (lambda c: bm25.count_holding_all([c, *others])) if others else None)

    def _spelling(self) -> Speller:
        build = self._open()
        key = (str(build.path), build.bm25.count())
        with self._mutex:
            cached = self._speller
            if cached is not None and cached[0] == key and time.monotonic() - cached[1] < SPELLING_REFRESH_S:
                return cached[2]
        speller = Speller(build.bm25.vocabulary())
        with self._mutex:
            self._speller = (key, time.monotonic(), speller)
        return speller

    def search_identifiers(self, keys: Sequence[str], *, filters: SearchFilters | None = None, limit: int = 20) -> list[Hit]:
        return self._open().bm25.search_identifiers(keys, filters, limit)

    def describe(self) -> dict:
        build = self._open(force=True)
        size = sum(p.stat().st_size for p in build.path.rglob("*") if p.is_file())
        return {
            "backend": "embedded (tantivy BM25 + usearch HNSW kNN)",
            "index": str(build.path),
            "documents": build.bm25.count(),
            "fusion_space": (build.space or {}).get("version", "not recorded"),
            "vectors": {name: build.vectors.size(name) for name in self.vector_dims},
            "size_mb": round(size / 1e6, 1),
            **({} if build.bm25.has_lexical_fields else {
                "note": "built before typo tolerance and identifier matching: run manage.py reindex to turn them on"}),
        }


def _mark_complete(path: Path, *, documents: int | None) -> None:
    """Write ``complete.json`` into a build (atomically; an existing marker is kept)."""
    marker = path / COMPLETE_FILE
    if marker.exists():
        return
    tmp = path / f".{COMPLETE_FILE}.tmp"
    tmp.write_text(json.dumps({"completed_at": datetime.now(UTC).isoformat(), "documents": documents}), encoding="utf-8")
    os.replace(tmp, marker)


def _being_built(path: Path) -> bool:
    """True while a live process holds the flock on the build's ``.building`` file."""
    try:
        fh = open(path / BUILDING_FILE)  # noqa: SIM115
    except FileNotFoundError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


SearchBackend = EmbeddedSearchBackend
