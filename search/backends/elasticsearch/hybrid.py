"""Hybrid search on Elasticsearch: a fusion rule run on the cluster (``rrf`` / ``linear`` retrievers),
and several retrievals in one round trip (``_msearch``).

Part of :class:`~search.backends.elasticsearch.backend.ElasticsearchSearchBackend` (a mixin).
Which rule runs where is decided by ``search.hybrid`` (``search.hybrid.compile``): this module
only says what the connected cluster can run (:meth:`HybridSearch.fusion_support`) and runs
what it is given, so the cluster and ``search.hybrid``'s own fusion rank alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from search.backends.base import FusedResult, Hit, ScorePart, SearchBackendError, SearchUnavailable, ServerFusionUnavailable
from search.backends.elasticsearch import queries as es_queries
from search.backends.elasticsearch.client import RETRY_STATUSES, translated_errors
from search.backends.retrieval import FusionRequest, FusionSupport, Retrieval, TextRetrieval

logger = logging.getLogger(__name__)

#: ``HYBRID`` param: ``auto`` runs a rule on the cluster when its version has the retriever;
#: ``retrievers`` assumes it has (weighted RRF still needs 9.2); ``client`` never fuses on the
#: cluster (``search.hybrid`` fuses lists fetched with ``_msearch``).
HYBRID_MODES = ("auto", "retrievers", "client")


class HybridSearch:
    """``fusion_support``, ``search_fused`` and ``search_many`` of the Elasticsearch backend."""

    supports_server_fusion = True
    supports_multi_search = True

    def fusion_support(self) -> FusionSupport:
        """What the cluster runs in one request: ``rrf`` from 8.16 (weighted from 9.2), ``linear``
        (``minmax``) from 8.18.

        ``HYBRID`` = ``client`` lists no method; ``retrievers`` lists both whatever the version.
        While the cluster cannot be asked its version, a backend with a ``FALLBACK`` lists no
        method (its lists come from the fallback engine); one without raises.

        Raises:
            SearchUnavailable: the cluster does not answer and no fallback is configured.
        """
        if self.hybrid_mode == "client":
            return FusionSupport(max_window=es_queries.MAX_KNN)
        try:
            f = self.features
        except SearchUnavailable:
            if self.fallback_alias:
                return FusionSupport()
            raise
        forced = self.hybrid_mode == "retrievers"
        methods = {m for m, ok in (("rrf", f.rrf_retriever), ("linear", f.linear_retriever)) if ok or forced}
        return FusionSupport(methods=frozenset(methods), weighted_rrf=f.rrf_weights, max_window=es_queries.MAX_KNN)

    def search_fused(self, request: FusionRequest) -> list[FusedResult]:
        """Run ``request`` as one ``rrf`` or ``linear`` retriever; each result's explanation holds
        the fused score (``rrf_retriever`` / ``linear_retriever``), not the per-retriever parts.

        Raises:
            ValueError: a method the cluster does not run, a vector of the wrong dimension or with
                non-finite values, or a window over 10,000.
            ServerFusionUnavailable: the cluster does not answer and a ``FALLBACK`` can serve the lists.
            SearchUnavailable: the cluster does not answer.
        """
        support = self.fusion_support()
        if request.method not in support.methods:
            raise ValueError(f"This cluster does not fuse with {request.method!r}; it runs: {', '.join(sorted(support.methods)) or 'nothing'}")
        if not 0 < request.window <= support.max_window:
            raise ValueError(f"A fusion window must be from 1 to {support.max_window}, got {request.window}")
        for r in request.retrievals:
            if not isinstance(r, TextRetrieval):
                self._checked_vector(r.field, r.vector)
        weighted = len({float(request.weights.get(r.name, 1.0)) for r in request.retrievals}) > 1
        if weighted and request.method == "rrf" and not support.weighted_rrf:
            raise ValueError("This cluster weighs every RRF retriever 1.0 (weighted RRF needs Elasticsearch 9.2)")
        body = es_queries.fused_body(request, self.boosts, candidates_factor=self.candidates_factor, weighted_rrf=weighted)
        try:
            hits = self._search(body, f"run a hybrid ({request.method}) search")
        except SearchUnavailable as exc:
            if self.fallback_alias:
                raise ServerFusionUnavailable(str(exc)) from exc
            raise
        out = []
        for rank, h in enumerate(hits, start=1):
            score = float(h.get("_score") or 0.0)
            out.append(FusedResult(int(h["_id"]), score, [ScorePart(f"{request.method}_retriever", score, rank, score)]))
        return out

    def search_many(self, retrievals: Sequence[Retrieval]) -> list[list[Hit]]:
        """Every retrieval in one ``_msearch`` request; lists as :meth:`search_text` / :meth:`search_vector` return them.

        A kNN with an all-zero vector (nothing is similar to it) is answered empty without asking.
        While the cluster is unreachable, a ``FALLBACK`` engine answers each retrieval.

        Raises:
            ValueError: a vector of the wrong dimension or with non-finite values; a filter price that is not finite.
            SearchBackendError: the cluster refused one of the searches (the first refusal is named).
            SearchUnavailable: the cluster does not answer (and no fallback is configured).
        """
        asked: list[int] = []
        bodies: list[dict] = []
        for i, r in enumerate(retrievals):
            if not isinstance(r, TextRetrieval):
                vector = self._checked_vector(r.field, r.vector)
                if not np.any(vector) or r.k <= 0:
                    continue
            elif not r.query.strip():
                continue
            asked.append(i)
            bodies.append(es_queries.search_body(r, self.boosts, candidates_factor=self.candidates_factor))
        out: list[list[Hit]] = [[] for _ in retrievals]
        if not bodies:
            return out
        try:
            with translated_errors("run several searches"):
                responses = self.client.msearch(index=self._read_target(), searches=es_queries.msearch_searches(bodies))["responses"]
            for i, response in zip(asked, responses, strict=True):
                out[i] = self._hits_of(retrievals[i], _checked_response(response))
        except SearchUnavailable as exc:
            engine = self._fallback(exc)
            return [engine.search_text(r.query, filters=r.filters, limit=r.limit) if isinstance(r, TextRetrieval)
                    else engine.search_vector(r.field, r.vector, filters=r.filters, k=r.k) for r in retrievals]
        return out

    def _checked_vector(self, field: str, vector: np.ndarray) -> np.ndarray:
        vector = self._check_vector(field, vector)
        if not np.all(np.isfinite(vector)):
            raise ValueError(f"Vector for field {field!r} has non-finite values (NaN or infinity)")
        return vector

    @staticmethod
    def _hits_of(retrieval: Retrieval, hits: list[dict]) -> list[Hit]:
        if isinstance(retrieval, TextRetrieval):
            return [Hit(int(h["_id"]), float(h.get("_score") or 0.0)) for h in hits]
        # Elasticsearch scores cosine kNN as (1 + cos) / 2; report the cosine like the embedded engine.
        return [Hit(int(h["_id"]), 2.0 * float(h["_score"]) - 1.0) for h in hits]


def _checked_response(response: dict) -> list[dict]:
    """The hits of one ``_msearch`` response item, or its error raised like a single search's."""
    error = response.get("error")
    if error is None:
        return response["hits"]["hits"]
    status = int(response.get("status") or 500)
    cause = (error.get("root_cause") or [error])[0] if isinstance(error, dict) else {}
    reason = f"{cause.get('type', 'error')}: {cause.get('reason', '')}" if isinstance(cause, dict) else str(error)
    if status in RETRY_STATUSES:
        raise SearchUnavailable(f"Elasticsearch could not run a search right now (HTTP {status}, {reason})")
    raise SearchBackendError(f"Elasticsearch refused a search of a multi-search (HTTP {status}, {reason})")
