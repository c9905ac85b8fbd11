"""The Elasticsearch backend: the cluster and its aliases, reading, facets and explanations.

Writing (:mod:`.writes`), index builds (:mod:`.builds`) and hybrid search (:mod:`.hybrid`)
are mixed in from their own modules; :mod:`search.backends.elasticsearch` describes the whole.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from elasticsearch import Elasticsearch, NotFoundError

from search.backends import load_backend
from search.backends._spelling import max_edits
from search.backends.base import (
    BaseSearchBackend,
    Hit,
    SearchBackendError,
    SearchFilters,
    SearchUnavailable,
)
from search.backends.elasticsearch import mapping as es_mapping
from search.backends.elasticsearch import queries as es_queries
from search.backends.elasticsearch.builds import KEEP_BUILDS, Builds
from search.backends.elasticsearch.client import ClusterFeatures, detect_version, make_client, translated_errors
from search.backends.elasticsearch.hybrid import HYBRID_MODES, HybridSearch
from search.backends.elasticsearch.writes import BULK_BACKOFF_S, BULK_CHUNK_SIZE, BULK_MAX_RETRIES, WRITE_BLOCK_WAIT_S, BulkWrites

logger = logging.getLogger(__name__)

#: Name of the first build, created on first use when no alias exists yet. Fixed (not a time
#: stamp) so that two processes starting at once create the same index, not two.
INITIAL_STAMP = "00000000-000000-000000"
#: kNN candidates per shard as a multiple of k. Elasticsearch's own default is 1.5 * k; 2 * k
#: leaves room for the int8 quantisation loss. Not measured on a cluster here.
NUM_CANDIDATES_FACTOR = 2.0
#: Ids fetched per page when listing every document (``ids()``), below ``max_result_window``.
IDS_PAGE_SIZE = 5_000
#: How often a reader asks which build the read alias points to, to follow the fusion space
#: recorded in that build's mapping (``_meta.fusion_space``) after a swap in another process.
#: One ``GET _alias`` per process every few seconds.
SPACE_CHECK_INTERVAL_S = 5.0


class ElasticsearchSearchBackend(BulkWrites, Builds, HybridSearch, BaseSearchBackend):
    """Products in an Elasticsearch cluster; see :mod:`search.backends.elasticsearch`.

    Params (``SEARCH_BACKENDS`` entry): ``URLS``, ``INDEX`` (alias name, default ``products``),
    ``SHARDS``, ``REPLICAS``, ``QUANTIZATION`` (``none``/``int8``/``bbq``), ``HYBRID``
    (``auto``: fusion rules run on the cluster when its version has the retriever; ``retrievers``;
    ``client``: never, ``search.hybrid`` fuses lists fetched with ``_msearch``),
    ``KEEP_BUILDS``, ``WRITE_BLOCK_WAIT_S``, ``FALLBACK`` (a ``SEARCH_BACKENDS`` alias answering reads while the cluster
    is unreachable, e.g. ``"embedded"``), ``FIELD_BOOSTS``, and the client's (see
    :func:`search.backends.elasticsearch.client.make_client`).

    Capabilities: server-side fusion and multi-search (:mod:`.hybrid`), term analysis, facets,
    highlights and score explanations.

    Raises:
        ValueError: an unknown ``HYBRID`` mode, ``QUANTIZATION`` or ``WORDS_TOKENIZER``.
    """

    supports_term_analysis = True
    supports_facets = True
    supports_highlight = True
    supports_explain = True

    def __init__(
        self, params: dict, vector_dims: dict[str, int], *, space: dict | None = None, client: Elasticsearch | None = None,
        build_index: str | None = None,
    ):
        super().__init__(params, vector_dims, space=space)
        self.name = params.get("INDEX", "products")
        self.read_alias = self.name
        self.write_alias = f"{self.name}-write"
        self.options = es_mapping.IndexOptions(
            shards=int(params.get("SHARDS", 1)), replicas=int(params.get("REPLICAS", 0)), quantization=params.get("QUANTIZATION", "int8"),
            words_tokenizer=params.get("WORDS_TOKENIZER", "standard"),
        )
        self.boosts = dict(params.get("FIELD_BOOSTS") or settings.SEARCH_FIELD_BOOSTS)
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
        self._fallback_engine: BaseSearchBackend | None = None
        #: False once the live mapping is seen to predate the ``identifiers`` field (until a reindex).
        self.maps_identifiers = True

    # -- cluster and aliases ---------------------------------------------------------------------
    @property
    def features(self) -> ClusterFeatures:
        """What the cluster supports; its version is asked once per backend instance."""
        with self._lock:
            if self._features is None:
                self._features = ClusterFeatures.for_version(detect_version(self.client))
                logger.info("Elasticsearch %s (HYBRID %s)", ".".join(map(str, self._features.version)), self.hybrid_mode)
            return self._features

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
        if self.initial_space is not None and self.initial_space.get("dim") == self.vector_dims.get("fused"):
            body["mappings"]["_meta"] = {"fusion_space": self.initial_space}  # as a rebuild records it
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
        build made with the new one (``search.embedding.spaces``). The fusion space recorded in the
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
            self.maps_identifiers = "identifiers" in props
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

    # -- reading ---------------------------------------------------------------------------------
    def search_text(self, query: str | None, *, filters: SearchFilters | None = None, limit: int = 100) -> list[Hit]:
        if query is not None and not query.strip():
            return []
        body = es_queries.text_search_body(query, filters, limit, self.boosts)
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

    def _search(self, body: dict, what: str) -> list[dict]:
        with translated_errors(what):
            response = self.client.search(index=self._read_target(), **body)
        return response["hits"]["hits"]

    def _fallback(self, exc: SearchUnavailable) -> BaseSearchBackend:
        """The configured fallback engine (built once, with this backend's dimensions and space), or re-raise ``exc``."""
        if not self.fallback_alias:
            raise exc
        logger.warning("Elasticsearch unavailable, answering from the %r backend: %s", self.fallback_alias, exc)
        with self._lock:
            if self._fallback_engine is None:
                self._fallback_engine = load_backend(self.fallback_alias, vector_dims=self.vector_dims, space=self.initial_space)
            return self._fallback_engine

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

    # -- capabilities: facets, highlighting, explanations, terms ----------------------------------
    def facets(self, query: str | None, *, filters: SearchFilters | None = None, size: int = 20) -> dict[str, list[tuple[str, int]]]:
        """Facet counts over every document matching ``query`` and ``filters`` (terms/range aggregations).

        Returns:
            ``{"category": [(path, count), ...], "brand": [...], "price": [("500-1000", count), ...]}``;
            categories are one level below the category filter, empty price bands left out.
        """
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

    def known_words(self, words: Sequence[str]) -> set[str]:
        """The ``words`` some document holds in a BM25 field, counted in one request."""
        words = list(dict.fromkeys(words))
        if not words:
            return set()
        with translated_errors("count the documents holding each word"):
            response = self.client.search(index=self._read_target(), **es_queries.known_words_body(words, self.boosts))
        buckets = response.body["aggregations"]["known"]["buckets"]
        return {w for i, w in enumerate(words) if buckets.get(f"w{i}", {}).get("doc_count", 0) > 0 or not self.terms(w)}

    def spelling_suggestions(self, words: Sequence[str], *, context: Sequence[str] = ()) -> dict[str, str]:
        """The term suggester's first option for each word (closest, then most frequent); ``context``
        is not used here (the embedded engine weighs equally close candidates by it)."""
        allowed = {w: max_edits(w.lower()) for w in dict.fromkeys(words)}
        allowed = {w: n for w, n in allowed.items() if n}
        if not allowed:
            return {}
        with translated_errors("ask for spelling suggestions"):
            response = self.client.search(index=self._read_target(), **es_queries.spelling_body({w.lower(): n for w, n in allowed.items()}))
        out = {}
        for i, word in enumerate(allowed):
            entries = response.body.get("suggest", {}).get(f"w{i}") or []
            options = [o["text"] for e in entries for o in e.get("options", [])]
            if options:
                out[word] = options[0]
        return out

    def search_identifiers(self, keys: Sequence[str], *, filters: SearchFilters | None = None, limit: int = 20) -> list[Hit]:
        keys = [k for k in dict.fromkeys(keys) if k]
        if not keys or not self.maps_identifiers:
            return []
        hits = self._search(es_queries.identifiers_body(keys, filters, limit), "find identifiers")
        return [Hit(int(h["_id"]), 1.0) for h in hits]

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
            support = self.fusion_support()
            facts["hybrid"] = f"on the cluster: {', '.join(sorted(support.methods))}" if support.methods else "fused by search.hybrid (_msearch)"
            facts["builds"] = len(self.builds())
        except SearchUnavailable as exc:
            facts["error"] = str(exc)
        return facts
