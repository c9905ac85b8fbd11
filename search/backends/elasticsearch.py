"""Elasticsearch engine (production, scale-out): BM25 and kNN on ``dense_vector`` fields in one cluster.

Index layout (settings and mapping in :mod:`search.backends.es_mapping`)::

    products-20261130-235959-123456   one physical index per build
    products        (read alias)  -> the live build; every search goes through it
    products-write  (write alias) -> the live build; every write goes through it

``rebuild()`` creates a new build beside the live one, fills it (refresh off, no replicas),
blocks writes to the live index while ``before_swap`` catches up, restores refresh and
replicas, refreshes, checks the document count, records the build as complete in its mapping
``_meta`` (``build.complete``) and moves both aliases in one ``_aliases`` call (atomic). The
newest ``keep`` previous *complete* builds stay for rollback; older ones are deleted, and so are
incomplete builds older than the live one (left by a rebuild that died, e.g. a killed
``reindex``); incomplete builds newer than the live one may still be filling and are left.

Refresh policy: writes are not refreshed per request (``refresh=false``, the cheapest); the
live index refreshes every second (``es_mapping.LIVE_REFRESH_INTERVAL``), so a worker's writes
reach shoppers within about a second, and :meth:`refresh` forces it (tests, a rebuild's count
check). Hybrid ranking runs on the cluster through the ``retriever`` API (``rrf``; ``linear``
with ``minmax``) when the cluster's version has it, else client-side with ``search.ranking``
over separate BM25 and kNN requests, so both rank alike. Cluster down or busy raises
:class:`~search.backends.base.SearchUnavailable` (or, with ``FALLBACK`` set, reads are answered
by the embedded engine).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone

import numpy as np
from elasticsearch import Elasticsearch, NotFoundError, helpers

from search import ranking
from search.backends import es_mapping, es_queries
from search.backends.base import (
    BaseSearchBackend,
    DocumentsRejected,
    Hit,
    SearchBackendError,
    SearchDocument,
    SearchFilters,
    SearchUnavailable,
)
from search.backends.es_client import ClusterFeatures, detect_version, make_client, translated_errors

logger = logging.getLogger(__name__)

#: Name of the first build, created on first use when no alias exists yet. Fixed (not a time
#: stamp) so that two processes starting at once create the same index, not two.
INITIAL_STAMP = "00000000-000000-000000"
#: Documents per ``_bulk`` request and the byte cap per request. A product with all three
#: vectors is ~25 kB of JSON (2,048 floats at ~11 characters plus text), so 500 documents make
#: ~12 MB requests, under the cap; Elastic's guidance is 5-15 MB per bulk request.
BULK_CHUNK_SIZE = 500
BULK_MAX_BYTES = 15 * 1024 * 1024
#: Retries of documents the cluster answered 429 (too many requests) for, with backoff from
#: ``BULK_BACKOFF_S`` doubling up to 30 s; after them the batch fails as transient and the
#: Celery task retries it whole (indexing by id is idempotent).
BULK_MAX_RETRIES = 3
BULK_BACKOFF_S = 1.0
#: Bulk item statuses that are transient (the cluster was busy or a shard was moving).
TRANSIENT_ITEM_STATUSES = {429, 502, 503, 504}
#: kNN candidates per shard as a multiple of k. Elasticsearch's own default is 1.5 * k; 2 * k
#: leaves room for the int8 quantisation loss. Not measured on a cluster here.
NUM_CANDIDATES_FACTOR = 2.0
#: Ids fetched per page when listing every document (``ids()``), below ``max_result_window``.
IDS_PAGE_SIZE = 5_000
#: Previous builds kept for rollback after a swap.
KEEP_BUILDS = 1
HYBRID_MODES = ("auto", "retrievers", "client")
#: How long a write to the live index waits while it is write-blocked for an alias swap (the
#: swap's ``before_swap`` catch-up takes seconds), and how often it tries again.
WRITE_BLOCK_WAIT_S = 60.0
WRITE_BLOCK_RETRY_S = 0.2
#: How often a reader asks which build the read alias points to, to follow the fusion space
#: recorded in that build's mapping (``_meta.fusion_space``) after a swap in another process.
#: One ``GET _alias`` per process every few seconds.
SPACE_CHECK_INTERVAL_S = 5.0


class _WriteBlocked(SearchUnavailable):
    """Documents refused because the index is write-blocked (an alias swap is in progress)."""

    def __init__(self, message: str, ids: set[int], written: list[int], refused: dict[int, str]):
        super().__init__(message)
        self.ids, self.written, self.refused = ids, written, refused
_FIELD_RE = re.compile(r"field \[([^\]]+)\]")


class ElasticsearchSearchBackend(BaseSearchBackend):
    """Products in an Elasticsearch cluster; see the module docstring.

    Params (``SEARCH_BACKENDS`` entry): ``URLS``, ``INDEX`` (alias name, default ``products``),
    ``SHARDS``, ``REPLICAS``, ``QUANTIZATION`` (``none``/``int8``/``bbq``), ``HYBRID``
    (``auto``: retrievers when the cluster version has them; ``retrievers``; ``client``),
    ``POPULARITY_BOOST`` (weight of the ``rank_feature`` click prior in BM25, 0 disables it),
    ``KEEP_BUILDS``, ``WRITE_BLOCK_WAIT_S``, ``FALLBACK`` (a ``SEARCH_BACKENDS`` alias answering reads while the cluster
    is unreachable, e.g. ``"embedded"``), ``FIELD_BOOSTS``, and the client's (see
    :func:`search.backends.es_client.make_client`).

    Raises:
        ValueError: an unknown ``HYBRID`` mode or ``QUANTIZATION``.
    """

    def __init__(
        self, params: dict, vector_dims: dict[str, int], *, client: Elasticsearch | None = None, build_index: str | None = None
    ):
        super().__init__(params, vector_dims)
        from django.conf import settings

        self.name = params.get("INDEX", "products")
        self.read_alias = self.name
        self.write_alias = f"{self.name}-write"
        self.options = es_mapping.IndexOptions(
            shards=int(params.get("SHARDS", 1)), replicas=int(params.get("REPLICAS", 0)), quantization=params.get("QUANTIZATION", "int8")
        )
        self.boosts = dict(params.get("FIELD_BOOSTS") or settings.SEARCH_FIELD_BOOSTS)
        self.popularity_boost = float(params.get("POPULARITY_BOOST", 1.0))
        self.hybrid_mode = params.get("HYBRID", "auto")
        if self.hybrid_mode not in HYBRID_MODES:
            raise ValueError(f"Unknown HYBRID mode {self.hybrid_mode!r}; valid: {', '.join(HYBRID_MODES)}")
        self.keep_builds = int(params.get("KEEP_BUILDS", KEEP_BUILDS))
        self.candidates_factor = float(params.get("NUM_CANDIDATES_FACTOR", NUM_CANDIDATES_FACTOR))
        self.bulk_chunk_size = int(params.get("BULK_CHUNK_SIZE", BULK_CHUNK_SIZE))
        self.bulk_max_retries = int(params.get("BULK_MAX_RETRIES", BULK_MAX_RETRIES))
        self.bulk_backoff_s = float(params.get("BULK_BACKOFF_S", BULK_BACKOFF_S))
        self.fallback_alias = params.get("FALLBACK") or None
        self.write_block_wait_s = float(params.get("WRITE_BLOCK_WAIT_S", WRITE_BLOCK_WAIT_S))
        self.client = client if client is not None else make_client(params)
        self._build_index = build_index  # set on a backend writing into a build being rebuilt
        self._written: set[int] = set()  # ids written into that build, for the count check
        self._features: ClusterFeatures | None = None
        self._ready = build_index is not None
        self._lock = threading.RLock()
        self._space: dict | None = None  # fusion space recorded with the live build (or this build)
        self._space_targets: list[str] | None = None
        self._space_checked = 0.0

    # -- cluster and aliases ---------------------------------------------------------------------
    @property
    def features(self) -> ClusterFeatures:
        """What the cluster supports; its version is asked once per backend instance."""
        with self._lock:
            if self._features is None:
                self._features = ClusterFeatures.for_version(detect_version(self.client))
                logger.info("Elasticsearch %s: hybrid by %s", ".".join(map(str, self._features.version)), self.hybrid_strategy("rrf", {}))
            return self._features

    def hybrid_strategy(self, method: str, weights: Mapping[str, float]) -> str:
        """``"retriever"`` when ``method`` runs on the cluster, ``"client"`` when it is fused here.

        ``rrf`` needs the rrf retriever (8.16), and 9.2 when the weights differ; ``linear``
        needs the linear retriever (8.18). ``HYBRID`` = ``client`` always fuses here;
        ``retrievers`` uses them whatever the version says, except weighted RRF before 9.2.
        """
        if self.hybrid_mode == "client":
            return "client"
        forced = self.hybrid_mode == "retrievers"
        f = self.features
        if method == "linear":
            return "retriever" if forced or f.linear_retriever else "client"
        unequal = len({float(w) for w in weights.values() if float(w) != 0}) > 1
        if unequal and not f.rrf_weights:
            return "client"  # weights must count: fuse here rather than drop them
        return "retriever" if forced or f.rrf_retriever else "client"

    def _new_index_name(self) -> str:
        return f"{self.name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}"

    def _is_build(self, index: str) -> bool:
        return re.fullmatch(re.escape(self.name) + r"-\d{8}-\d{6}-\d{6}", index) is not None

    def _ensure(self) -> None:
        """Create the first build and both aliases if there is none, and check the live mapping."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            self.features  # noqa: B018 (detects the version and sets the compatibility headers)
            with translated_errors("look up the index alias"):
                exists = bool(self.client.indices.exists_alias(name=self.read_alias))
            if not exists:
                self._create_initial()
            self._check_mapping()
            self._ready = True

    def _create_initial(self) -> None:
        index = f"{self.name}-{INITIAL_STAMP}"
        body = es_mapping.index_body(self.vector_dims, self.options, building=False)
        try:
            with translated_errors(f"create the index {index}"):
                self.client.indices.create(
                    index=index, **body, aliases={self.read_alias: {}, self.write_alias: {"is_write_index": True}}
                )
        except SearchBackendError as exc:
            if "resource_already_exists_exception" not in str(exc):  # another process made it first
                raise

    def _check_mapping(self) -> None:
        """Fail clearly when the live index's text or image vector dimensions differ from the encoders'.

        The fused field follows the live index instead: a newly trained fusion head changes its
        dimension, and search keeps serving the old head's vectors until ``reindex`` swaps in a
        build made with the new one (``search.spaces``). The fusion space recorded in the
        mapping's ``_meta`` is read here too.

        Raises:
            SearchBackendError: naming the field, its indexed dimension and the expected one.
        """
        with translated_errors("read the index mapping"):
            mappings = self.client.indices.get_mapping(index=self.read_alias).body
        for index, entry in mappings.items():
            mapping = entry.get("mappings") or {}
            props = mapping.get("properties") or {}
            self._space = (mapping.get("_meta") or {}).get("fusion_space")
            for role, dims in list(self.vector_dims.items()):
                field = es_mapping.VECTOR_FIELD_NAMES[role]
                mapped = (props.get(field) or {}).get("dims")
                if mapped is not None and int(mapped) != int(dims) and role == "fused":
                    self.vector_dims["fused"] = int(mapped)
                elif mapped is not None and int(mapped) != int(dims):
                    raise SearchBackendError(
                        f"Mapping conflict in {index}: field {field!r} holds {mapped}-dimensional vectors but the encoders "
                        f"produce {dims}. Run `manage.py reindex --backend elasticsearch` to build an index with the new mapping."
                    )

    def _alias_targets(self, alias: str) -> list[str]:
        try:
            with translated_errors(f"read the alias {alias}"):
                return sorted(self.client.indices.get_alias(name=alias).body)
        except SearchBackendError as exc:
            if isinstance(exc.__cause__, NotFoundError):
                return []
            raise

    def _read_target(self) -> str:
        if self._build_index is not None:
            return self._build_index
        self._ensure()
        return self.read_alias

    def _write_target(self) -> str:
        if self._build_index is not None:
            return self._build_index
        self._ensure()
        return self.write_alias

    # -- writing ---------------------------------------------------------------------------------
    def reset_index(self) -> None:
        """Swap in a new empty build (the previous one is kept like any other)."""
        with self.rebuild():
            pass

    def add_bulk(self, docs: Sequence[SearchDocument]) -> None:
        """Index ``docs`` through the write alias (or into the build being filled).

        Raises:
            ValueError: a document has a vector field the index lacks or of the wrong
                dimension (nothing of the batch is written).
            DocumentsRejected: the cluster refused some documents (e.g. a mapping error, named
                with its field) or they carry non-finite or all-zero vectors; the rest were written.
            SearchUnavailable: the cluster is unreachable or busy; retry the batch.
        """
        if not docs:
            return
        for doc in docs:  # a vector field or dimension the index does not have: the whole batch is wrong
            for role, vec in doc.vectors.items():
                if vec is not None:
                    self._check_vector(role, vec)
        target = self._write_target()
        rejected: dict[int, str] = {}
        actions = []
        for doc in docs:
            problem = self._document_problem(doc)
            if problem:
                rejected[int(doc.id)] = problem
            else:
                actions.append(es_queries.index_action(doc, target))
        written, refused = self._bulk_waiting(actions, "write documents") if actions else ([], {})
        rejected.update(refused)
        if self._build_index is not None:
            self._written.update(written)
        if rejected:
            raise DocumentsRejected(rejected, written)

    def _document_problem(self, doc: SearchDocument) -> str | None:
        """Why a document cannot be indexed, found before sending it (None when it can)."""
        for role, vec in doc.vectors.items():
            if vec is None:
                continue
            vec = self._check_vector(role, vec)
            if not np.all(np.isfinite(vec)):
                return f"Vector for field {role!r} has non-finite values (NaN or infinity)."
            if not np.any(vec):
                return f"Vector for field {role!r} is all zeros; cosine similarity needs a non-zero vector."
        if doc.price is not None and not np.isfinite(float(doc.price)):
            return "Price is not a finite number."
        return None

    def delete(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        target = self._write_target()
        deleted, refused = self._bulk_waiting([es_queries.delete_action(int(i), target) for i in ids], "delete documents")
        self._written.difference_update(int(i) for i in ids)
        if refused:
            raise SearchBackendError(f"Elasticsearch refused to delete {len(refused)} document(s): {next(iter(refused.values()))}")

    def _bulk_waiting(self, actions: list[dict], what: str) -> tuple[list[int], dict[int, str]]:
        """:meth:`_bulk`, waiting while the live index is write-blocked for an alias swap.

        During a swap the previous index refuses writes (``cluster_block_exception``); the
        refused documents are resent every ``WRITE_BLOCK_RETRY_S`` for up to
        ``WRITE_BLOCK_WAIT_S``, through the write alias, which by then names the new index. So a
        write racing a reindex waits for it, as with the embedded engine's lock, and is not lost.
        """
        deadline = time.monotonic() + self.write_block_wait_s
        ok: list[int] = []
        refused: dict[int, str] = {}
        while True:
            try:
                written, rejected = self._bulk(actions, what)
                return ok + written, {**refused, **rejected}
            except _WriteBlocked as blocked:
                ok += blocked.written
                refused.update(blocked.refused)
                if self._build_index is not None or time.monotonic() > deadline:
                    raise SearchUnavailable(str(blocked)) from blocked
                actions = [a for a in actions if int(a["_id"]) in blocked.ids]
                time.sleep(WRITE_BLOCK_RETRY_S)

    def _bulk(self, actions: list[dict], what: str) -> tuple[list[int], dict[int, str]]:
        """Send ``actions`` through ``_bulk`` in chunks; (ids written, id -> permanent refusal).

        Documents answered 429 are retried ``BULK_MAX_RETRIES`` times with backoff
        (``helpers.streaming_bulk``); whole requests answered 429/502/503/504 are retried by
        the client. A delete of a missing document counts as done.

        Raises:
            SearchUnavailable: documents still refused for a transient reason (busy cluster,
                writes blocked during an alias swap); the caller retries the batch.
        """
        ok: list[int] = []
        refused: dict[int, str] = {}
        transient: dict[int, str] = {}
        with translated_errors(what):
            for success, item in helpers.streaming_bulk(
                self.client, actions, chunk_size=self.bulk_chunk_size, max_chunk_bytes=BULK_MAX_BYTES,
                raise_on_error=False, raise_on_exception=True, max_retries=self.bulk_max_retries,
                initial_backoff=self.bulk_backoff_s, max_backoff=30.0,
            ):
                op, info = next(iter(item.items()))
                pid = int(info["_id"])
                status = int(info.get("status", 0))
                if success or (op == "delete" and status == 404):
                    ok.append(pid)
                    continue
                reason = describe_item_error(info.get("error"))
                if status in TRANSIENT_ITEM_STATUSES or "cluster_block_exception" in reason:
                    transient[pid] = reason
                elif status in (401, 403):
                    raise SearchBackendError(f"Elasticsearch refused to {what} (HTTP {status}: {reason}); check the credentials.")
                else:
                    refused[pid] = reason
        if transient:
            sample = next(iter(transient.values()))
            message = f"Elasticsearch could not {what} for {len(transient)} of {len(actions)} documents now ({sample})"
            if all("cluster_block_exception" in r for r in transient.values()):
                raise _WriteBlocked(message, set(transient), ok, refused)
            raise SearchUnavailable(message)
        return ok, refused

    def refresh(self) -> None:
        with translated_errors("refresh the index"):
            self.client.indices.refresh(index=self._write_target())

    @contextlib.contextmanager
    def rebuild(self, *, before_swap=None, keep: int | None = None, vector_dims=None, space=None) -> Iterator[ElasticsearchSearchBackend]:
        self._ensure()
        if space is None and vector_dims is None:  # same vectors as the live build: keep its record
            space = self._space  # read with the mapping by _ensure()
        new_index = self._new_index_name()
        dims = dict(vector_dims or self.vector_dims)
        body = es_mapping.index_body(dims, self.options, building=True)
        if space is not None:
            body["mappings"]["_meta"] = {"fusion_space": space}
        with translated_errors(f"create the index {new_index}"):
            self.client.indices.create(index=new_index, **body)
        builder = type(self)(self.params, dims, client=self.client, build_index=new_index)
        builder._features = self._features
        builder._space = space
        blocked: list[str] = []
        try:
            self._mark_complete(self._alias_targets(self.read_alias))  # live, so complete when it went live
            yield builder
            old_read = self._alias_targets(self.read_alias)
            old_write = self._alias_targets(self.write_alias)
            with translated_errors("block writes to the live index"):
                for index in old_write:  # writes racing the swap fail as transient and are retried
                    self.client.indices.put_settings(index=index, settings=es_mapping.write_block(True))
                    blocked.append(index)
            if before_swap is not None:
                before_swap(builder)
            with translated_errors(f"finish the index {new_index}"):
                self.client.indices.put_settings(index=new_index, settings=es_mapping.live_settings(self.options))
                self.client.indices.refresh(index=new_index)
                held = int(self.client.count(index=new_index)["count"])
            if held != len(builder._written):
                raise SearchBackendError(
                    f"The new index {new_index} holds {held} documents but {len(builder._written)} were written to it; "
                    "the live index was kept."
                )
            self._mark_complete([new_index], documents=held)
            actions = es_queries.swap_actions(
                read_alias=self.read_alias, write_alias=self.write_alias, new_index=new_index, old_read=old_read, old_write=old_write
            )
            with translated_errors("swap the index aliases"):
                self.client.indices.update_aliases(actions=actions)
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.indices.delete(index=new_index)
            raise
        finally:
            for index in blocked:  # the previous build stays writable, ready for a rollback
                with contextlib.suppress(Exception):
                    self.client.indices.put_settings(index=index, settings=es_mapping.write_block(False))
        logger.info("Swapped %s and %s to %s (%d documents)", self.read_alias, self.write_alias, new_index, held)
        self.vector_dims, self._space, self._space_targets = dims, space, [new_index]
        self._prune(self.keep_builds if keep is None else keep)

    def builds(self) -> list[str]:
        """Every build of this index name, oldest first."""
        with translated_errors("list the index builds"):
            found = self.client.indices.get_alias(index=f"{self.name}-*").body
        return sorted(i for i in found if self._is_build(i))

    def _build_meta(self, indexes: Sequence[str]) -> dict[str, dict]:
        """Index -> its mapping's ``_meta`` (``{}`` when it has none)."""
        if not indexes:
            return {}
        with translated_errors("read the builds' mappings"):
            found = self.client.indices.get_mapping(index=",".join(indexes)).body
        return {index: (entry.get("mappings") or {}).get("_meta") or {} for index, entry in found.items()}

    def _mark_complete(self, indexes: Sequence[str], *, documents: int | None = None) -> None:
        """Record ``build.complete`` in these builds' mapping ``_meta`` (kept: its fusion space)."""
        for index, meta in self._build_meta(indexes).items():
            if (meta.get("build") or {}).get("complete"):
                continue
            meta = {**meta, "build": {"complete": True, "documents": documents,
                                      "completed_at": datetime.now(timezone.utc).isoformat()}}
            with translated_errors(f"mark the index {index} complete"):
                self.client.indices.put_mapping(index=index, meta=meta)

    def _prune(self, keep: int) -> list[str]:
        """Keep the newest ``keep`` complete previous builds; delete older complete ones and
        incomplete ones older than the live build. Returns the deleted names."""
        live = set(self._alias_targets(self.read_alias)) | set(self._alias_targets(self.write_alias))
        previous = [i for i in self.builds() if i not in live]
        meta = self._build_meta(previous)
        complete = [i for i in previous if (meta.get(i, {}).get("build") or {}).get("complete")]
        doomed = complete[: max(0, len(complete) - max(0, keep))]
        newest_live = max(live, default="")
        doomed += [i for i in previous if i not in complete and i < newest_live]
        if doomed:
            with translated_errors("delete old index builds"):
                self.client.indices.delete(index=",".join(doomed))
        return doomed

    # -- reading ---------------------------------------------------------------------------------
    def search_text(self, query: str | None, *, filters: SearchFilters | None = None, limit: int = 100) -> list[Hit]:
        if query is not None and not query.strip():
            return []
        body = es_queries.text_search_body(query, filters, limit, self.boosts, popularity_boost=self.popularity_boost)
        try:
            hits = self._search(body, "search")
        except SearchUnavailable as exc:
            return self._fallback(exc).search_text(query, filters=filters, limit=limit)
        return [Hit(int(h["_id"]), float(h.get("_score") or 0.0) if query is not None else 0.0) for h in hits]

    def search_vector(self, field: str, vector: np.ndarray, *, filters: SearchFilters | None = None, k: int = 100) -> list[Hit]:
        vector = self._check_vector(field, vector)
        if not np.all(np.isfinite(vector)):
            raise ValueError(f"Vector for field {field!r} has non-finite values (NaN or infinity)")
        if not np.any(vector) or k <= 0:
            return []  # nothing is similar to a zero vector by cosine
        body = es_queries.knn_search_body(field, vector, k, filters, candidates_factor=self.candidates_factor)
        try:
            hits = self._search(body, "run a kNN search")
        except SearchUnavailable as exc:
            return self._fallback(exc).search_vector(field, vector, filters=filters, k=k)
        # Elasticsearch scores cosine kNN as (1 + cos) / 2; report the cosine like the embedded engine.
        return [Hit(int(h["_id"]), 2.0 * float(h["_score"]) - 1.0) for h in hits]

    def search_hybrid(
        self,
        text: str | None,
        vectors: Mapping[str, np.ndarray],
        *,
        filters: SearchFilters | None = None,
        k: int = 100,
        method: str = "rrf",
        weights: Mapping[str, float] | None = None,
        rrf_k: int = 60,
        min_similarity: Mapping[str, float] | None = None,
    ) -> list[ranking.FusedResult]:
        """BM25 and kNN on several vector fields fused into one ranking, on the cluster when it can.

        Retrievers are named as in ``settings.SEARCH_WEIGHTS``: ``bm25`` (when ``text``) and
        ``<field>_knn`` for each vector. With the ``rrf`` / ``linear`` retriever the cluster
        fuses (one request; each result's explanation holds the fused score only); otherwise
        each retriever is a request of its own and ``search.ranking.blend`` fuses them here,
        exactly as for the embedded engine (explanations list every retriever).

        Args:
            text: shopper words, or None for a photo-only query.
            vectors: vector field (``text``/``image``/``fused``) -> query vector.
            filters: applied inside every retriever.
            k: results, and each retriever's window.
            method: ``rrf`` or ``linear`` (``minmax``).
            weights: retriever name -> weight (missing: 1.0; 0 leaves it out).
            rrf_k: RRF rank constant.
            min_similarity: vector field -> least cosine of a kNN hit (kNN ``similarity``; the
                storefront's floor, see ``search.selectors.matched_ids``).

        Raises:
            ValueError: unknown method or vector field, or a vector of the wrong dimension.
            SearchUnavailable: the cluster cannot answer (and no fallback is configured).
        """
        if method not in ranking.FUSION_METHODS:
            raise ValueError(f"Unknown fusion method {method!r}; valid: {', '.join(ranking.FUSION_METHODS)}")
        weights = dict(weights or {})
        checked = {}
        for field, vec in vectors.items():
            vec = self._check_vector(field, vec)
            if not np.all(np.isfinite(vec)):
                raise ValueError(f"Vector for field {field!r} has non-finite values (NaN or infinity)")
            if np.any(vec):
                checked[field] = vec
        text = text if text and text.strip() else None
        try:
            names = ([es_queries.BM25] if text else []) + [es_queries.KNN_NAME[f] for f in checked]
            active = [n for n in names if float(weights.get(n, 1.0)) != 0]
            if len(active) >= 2 and self.hybrid_strategy(method, {n: weights.get(n, 1.0) for n in active}) == "retriever":
                return self._hybrid_on_cluster(text, checked, filters, k, method, weights, rrf_k, min_similarity)
            return self._hybrid_here(self, text, checked, filters, k, method, weights, rrf_k, min_similarity)
        except SearchUnavailable as exc:
            return self._hybrid_here(self._fallback(exc), text, checked, filters, k, method, weights, rrf_k, min_similarity)

    @staticmethod
    def _hybrid_here(engine, text, vectors, filters, k, method, weights, rrf_k, min_similarity) -> list[ranking.FusedResult]:
        """One request per retriever on ``engine`` (this cluster or the fallback), fused by ``search.ranking``."""
        floors = min_similarity or {}
        rankings: dict[str, list[Hit]] = {}
        if text:
            rankings[es_queries.BM25] = engine.search_text(text, filters=filters, limit=k)
        for field, vec in vectors.items():
            hits = engine.search_vector(field, vec, filters=filters, k=k)
            rankings[es_queries.KNN_NAME[field]] = [h for h in hits if field not in floors or h.score >= floors[field]]
        return ranking.blend(rankings, method=method, weights=weights, rrf_k=rrf_k)

    def _hybrid_on_cluster(self, text, vectors, filters, k, method, weights, rrf_k, min_similarity=None) -> list[ranking.FusedResult]:
        children = es_queries.retrievers(
            text, vectors, filters, k, self.boosts, candidates_factor=self.candidates_factor, popularity_boost=self.popularity_boost,
            similarity=min_similarity,
        )
        if method == "linear":
            body = es_queries.linear_body(children, weights, k=k)
        else:
            active = {float(weights.get(n, 1.0)) for n in children if float(weights.get(n, 1.0)) != 0}
            body = es_queries.rrf_body(children, weights, k=k, rank_constant=rrf_k, weighted=len(active) > 1)
        hits = self._search(body, f"run a hybrid ({method}) search")
        out = []
        for rank, h in enumerate(hits, start=1):
            score = float(h.get("_score") or 0.0)
            part = ranking.ScorePart(f"{method}_retriever", score, rank, score)
            out.append(ranking.FusedResult(int(h["_id"]), score, [part]))
        return out

    def _search(self, body: dict, what: str) -> list[dict]:
        with translated_errors(what):
            response = self.client.search(index=self._read_target(), **body)
        return response["hits"]["hits"]

    def _fallback(self, exc: SearchUnavailable) -> BaseSearchBackend:
        """The configured fallback engine, or re-raise ``exc``."""
        if not self.fallback_alias:
            raise exc
        from search.backends import get_backend

        logger.warning("Elasticsearch unavailable, answering from the %r backend: %s", self.fallback_alias, exc)
        return get_backend(self.fallback_alias)

    def count(self) -> int:
        with translated_errors("count documents"):
            return int(self.client.count(index=self._read_target())["count"])

    def ids(self) -> set[int]:
        out: set[int] = set()
        after = None
        index = self._read_target()
        while True:
            body = {"query": {"match_all": {}}, "sort": [{"product_id": {"order": "asc"}}], "size": IDS_PAGE_SIZE,
                    "_source": False, "track_total_hits": False}
            if after is not None:
                body["search_after"] = after
            with translated_errors("list document ids"):
                hits = self.client.search(index=index, **body)["hits"]["hits"]
            out.update(int(h["_id"]) for h in hits)
            if len(hits) < IDS_PAGE_SIZE:
                return out
            after = hits[-1]["sort"]

    def get_vectors(self, field: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        self._check_vector(field, np.ones(self.vector_dims.get(field, 0), np.float32))
        if not ids:
            return {}
        body = es_queries.vectors_body(field, ids)
        if self.features.source_exclude_vectors:
            body["_source"]["exclude_vectors"] = False
        name = es_mapping.VECTOR_FIELD_NAMES[field]
        hits = self._search(body, "read stored vectors")
        return {int(h["_id"]): np.asarray(h["_source"][name], dtype=np.float32) for h in hits if name in (h.get("_source") or {})}

    # -- extras: facets, highlighting, explanations -------------------------------------------------
    def facets(self, query: str | None, *, filters: SearchFilters | None = None, size: int = 20) -> dict[str, list[tuple[str, int]]]:
        """Facet counts over every document matching ``query`` and ``filters`` (terms/range aggregations).

        Returns:
            ``{"category": [(path, count), ...], "brand": [...], "price": [("500-1000", count), ...]}``;
            categories are one level below the category filter.
        """
        from django.conf import settings

        body = es_queries.facets_body(query, filters, settings.SEARCH_PRICE_BANDS, self.boosts, size=size)
        with translated_errors("count facets"):
            aggs = self.client.search(index=self._read_target(), **body)["aggregations"]
        parts = filters.category_parts if filters is not None else []
        prefix = " > ".join(parts) + " > " if parts else ""
        return {
            # The include regex already keeps one level below the filter; checked again here.
            "category": [
                (b["key"], int(b["doc_count"])) for b in aggs["category"]["buckets"]
                if b["key"].startswith(prefix) and b["key"].count(" > ") == len(parts)
            ],
            "brand": [(b["key"], int(b["doc_count"])) for b in aggs["brand"]["buckets"]],
            "price": [(b["key"], int(b["doc_count"])) for b in aggs["price"]["buckets"] if b["doc_count"]],
        }

    def highlights(self, query: str, ids: Sequence[int]) -> dict[int, dict[str, list[str]]]:
        """HTML-escaped fragments of title and description with the query's terms in ``<mark>``."""
        if not ids or not query.strip():
            return {}
        hits = self._search(es_queries.highlight_body(query, ids, self.boosts), "highlight results")
        return {int(h["_id"]): h.get("highlight", {}) for h in hits}

    def explain(self, query: str, product_id: int) -> dict:
        """Elasticsearch's explanation of one product's BM25 score for ``query`` (value, description, details)."""
        with translated_errors("explain a score"):
            response = self.client.explain(index=self._read_target(), id=str(product_id), **es_queries.explain_body(query, self.boosts))
        return response.body.get("explanation", {})

    def terms(self, text: str) -> list[str]:
        """Words of ``text`` the English analyzer keeps (lower-cased, stop words dropped; not stemmed).

        Computed here, without a request, for the storefront's "only common words" check.
        """
        words = re.findall(r"\w+", (text or "").lower())
        return [w for w in words if w not in es_mapping.ENGLISH_STOP_WORDS]

    def index_space(self) -> dict | None:
        """The fusion space in the live build's mapping ``_meta``; the read alias is re-checked
        every ``SPACE_CHECK_INTERVAL_S`` so a swap made by another process is followed."""
        if self._build_index is not None:
            return self._space
        with self._lock:
            now = time.monotonic()
            if self._space_targets is None or now - self._space_checked >= SPACE_CHECK_INTERVAL_S:
                self._ensure()
                self._space_checked = now
                targets = self._alias_targets(self.read_alias)
                if targets != self._space_targets:
                    self._check_mapping()
                    self._space_targets = targets
            return self._space

    def describe(self) -> dict:
        facts: dict = {"backend": "elasticsearch", "alias": self.read_alias}
        try:
            facts["cluster"] = ".".join(map(str, self.features.version))
            facts["index"] = ",".join(self._alias_targets(self.read_alias)) or "(none yet)"
            facts["documents"] = self.count()
            facts["hybrid"] = self.hybrid_strategy("rrf", {})
            facts["builds"] = len(self.builds())
        except SearchUnavailable as exc:
            facts["error"] = str(exc)
        return facts


def describe_item_error(error: object) -> str:
    """A bulk item's error as one line naming the field, e.g.
    ``field 'price': document_parsing_exception: failed to parse field [price] ...``."""
    if not isinstance(error, dict):
        return str(error or "rejected")
    reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    caused = error.get("caused_by")
    if isinstance(caused, dict) and caused.get("reason"):
        reason += f" ({caused.get('type')}: {caused['reason']})"
    match = _FIELD_RE.search(reason)
    return f"field {match.group(1)!r}: {reason}" if match else reason


SearchBackend = ElasticsearchSearchBackend
