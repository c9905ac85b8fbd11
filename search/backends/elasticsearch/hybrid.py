"""Hybrid search on Elasticsearch: the ``rrf`` / ``linear`` retrievers on the cluster, or client-side rank fusion.

Part of :class:`~search.backends.elasticsearch.backend.ElasticsearchSearchBackend` (a mixin).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from search.backends.base import FusedResult, Hit, ScorePart, SearchFilters, SearchUnavailable
from search.backends.elasticsearch import queries as es_queries

# Client-side rank fusion (older clusters, the fallback engine); see search_hybrid.
from search.hybrid.fusion import FUSION_METHODS, blend

HYBRID_MODES = ("auto", "retrievers", "client")


class HybridSearch:
    """``search_hybrid`` and ``hybrid_strategy`` of the Elasticsearch backend."""

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
    ) -> list[FusedResult]:
        """BM25 and kNN on several vector fields fused into one ranking, on the cluster when it can.

        Retrievers are named as in ``settings.SEARCH_WEIGHTS``: ``bm25`` (when ``text``) and
        ``<field>_knn`` for each vector. With the ``rrf`` / ``linear`` retriever the cluster
        fuses (one request; each result's explanation holds the fused score only); otherwise
        each retriever is a request of its own and ``search.hybrid.fusion.blend`` fuses them here,
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
                storefront's floor, see ``search.hybrid.floor.matched_ids``).

        Raises:
            ValueError: unknown method or vector field, or a vector of the wrong dimension.
            SearchUnavailable: the cluster cannot answer (and no fallback is configured).
        """
        if method not in FUSION_METHODS:
            raise ValueError(f"Unknown fusion method {method!r}; valid: {', '.join(FUSION_METHODS)}")
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
    def _hybrid_here(engine, text, vectors, filters, k, method, weights, rrf_k, min_similarity) -> list[FusedResult]:
        """One request per retriever on ``engine`` (this cluster or the fallback), fused by ``search.hybrid.fusion``."""
        floors = min_similarity or {}
        rankings: dict[str, list[Hit]] = {}
        if text:
            rankings[es_queries.BM25] = engine.search_text(text, filters=filters, limit=k)
        for field, vec in vectors.items():
            hits = engine.search_vector(field, vec, filters=filters, k=k)
            rankings[es_queries.KNN_NAME[field]] = [h for h in hits if field not in floors or h.score >= floors[field]]
        return blend(rankings, method=method, weights=weights, rrf_k=rrf_k)

    def _hybrid_on_cluster(self, text, vectors, filters, k, method, weights, rrf_k, min_similarity=None) -> list[FusedResult]:
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
            part = ScorePart(f"{method}_retriever", score, rank, score)
            out.append(FusedResult(int(h["_id"]), score, [part]))
        return out
