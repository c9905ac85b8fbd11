"""Searches of the recorded fake cluster (``fake_es.py``) answered as Elasticsearch documents them.

No Elasticsearch server runs here and noida-db (``test_es_emulator.py``) has neither the
``linear`` retriever nor weighted RRF, so :class:`ElasticsearchSemantics` answers the bodies
the backend sends, following Elastic's reference:

* ``knn`` (top level or as a retriever): exact cosine over the stored ``*_vector`` fields of the
  documents passing the ``filter`` clauses, hits under ``similarity`` (a raw cosine) dropped, the
  first ``k``, scored ``(1 + cos) / 2``;
* ``query`` / ``standard`` retriever: the BM25 part is **not** emulated: the words of the
  ``multi_match`` are scored by the embedded engine (tantivy) holding the same catalog, restricted
  to the documents passing the filters; so the tests that use this check what the backend asks
  for and how fusion combines it, not Lucene's BM25;
* ``rrf``: ``sum_r w_r / (rank_constant + rank_r)`` over each child's first ``rank_window_size``
  hits (weights from 9.2; 1.0 for a plain child);
* ``linear``: ``sum_r w_r * minmax_r`` over each child's first ``rank_window_size`` hits, min-max
  being 1.0 for every hit of a child whose scores are all equal (``MinMaxScoreNormalizer``);

ties broken by id. Filters understood: ``term`` on ``category_path``, ``terms`` on
``brand.raw``, ``range`` on ``price``, as ``queries.filter_clauses`` writes them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from search.backends.base import BaseSearchBackend, SearchFilters
from tests.backends.fake_es import FakeCluster


class ElasticsearchSemantics:
    """``FakeCluster.search_hits``: ``(index, body) -> hits``; see the module docstring.

    Args:
        cluster: the fake cluster whose stored documents are searched.
        bm25: an engine holding the same catalog, whose ``search_text`` scores the words.
    """

    def __init__(self, cluster: FakeCluster, bm25: BaseSearchBackend):
        self.cluster, self.bm25 = cluster, bm25

    def __call__(self, index: str, body: dict) -> list[dict]:
        size = int(body.get("size", 10))
        if "retriever" in body:
            scored = self._retriever(index, body["retriever"], window=size)
        elif "knn" in body:
            scored = self._knn(index, body["knn"])
        else:
            scored = self._query(index, body["query"], size)
        return [{"_index": index, "_id": str(pid), "_score": score} for pid, score in scored[:size]]

    # -- retrievers --------------------------------------------------------------------------------
    def _retriever(self, index: str, container: dict, *, window: int) -> list[tuple[int, float]]:
        (kind, spec), = container.items()
        if kind == "standard":
            return self._query(index, spec["query"], window, extra_filters=spec.get("filter", []))
        if kind == "knn":
            return self._knn(index, spec)
        window = int(spec.get("rank_window_size", window))
        children = []
        for entry in spec["retrievers"]:
            child = entry.get("retriever", entry)
            children.append((float(entry.get("weight", 1.0)), self._retriever(index, child, window=window)[:window]))
        if kind == "rrf":
            k = int(spec.get("rank_constant", 60))
            return _ranked(children, lambda hits: {pid: 1.0 / (k + rank) for rank, (pid, _) in enumerate(hits, start=1)})
        if kind == "linear":
            assert all(e.get("normalizer") == "minmax" for e in spec["retrievers"])
            return _ranked(children, _minmax)
        raise AssertionError(f"the emulation has no {kind!r} retriever")

    # -- leaves --------------------------------------------------------------------------------------
    def _query(self, index: str, query: dict, size: int, *, extra_filters: list | None = None) -> list[tuple[int, float]]:
        clauses = list(extra_filters or [])
        if "bool" in query and "must" in query["bool"]:  # text_search_body: {"bool": {"must": [text], "filter": [...]}}
            clauses += query["bool"].get("filter", [])
            query = query["bool"]["must"][0]
        words = next(c["multi_match"]["query"] for c in query["bool"]["should"] if "multi_match" in c)
        hits = self.bm25.search_text(words, filters=_filters(clauses), limit=size)
        stored = self._sources(index)
        return [(h.id, h.score) for h in hits if h.id in stored]

    def _knn(self, index: str, knn: dict) -> list[tuple[int, float]]:
        query = np.asarray(knn["query_vector"], np.float64)
        query /= np.linalg.norm(query)
        allowed = _matcher(_filters(knn.get("filter", [])))
        floor = knn.get("similarity")
        scored = []
        for pid, src in self._sources(index).items():
            vec = src.get(knn["field"])
            if vec is None or not allowed(src):
                continue
            vec = np.asarray(vec, np.float64)
            cos = float(vec @ query / np.linalg.norm(vec))
            if floor is None or cos >= floor:
                scored.append((pid, (1.0 + cos) / 2.0))
        return sorted(scored, key=lambda t: (-t[1], t[0]))[: int(knn["k"])]

    def _sources(self, index: str) -> dict[int, dict]:
        names = self.cluster._resolve(index)
        return {int(i): src for n in names for i, src in self.cluster.indices[n]["docs"].items()}


def _ranked(children: list[tuple[float, list[tuple[int, float]]]], per_child: Callable) -> list[tuple[int, float]]:
    total: dict[int, float] = {}
    for weight, hits in children:
        for pid, value in per_child(hits).items():
            total[pid] = total.get(pid, 0.0) + weight * value
    return sorted(total.items(), key=lambda t: (-t[1], t[0]))


def _minmax(hits: list[tuple[int, float]]) -> dict[int, float]:
    if not hits:
        return {}
    lo, hi = min(s for _, s in hits), max(s for _, s in hits)
    return {pid: 1.0 if abs(hi - lo) < 1e-6 else (s - lo) / (hi - lo) for pid, s in hits}


def _filters(clauses: list[dict]) -> SearchFilters:
    category, brands, lo, hi = None, (), None, None
    for clause in clauses:
        (kind, spec), = clause.items()
        if kind == "term":
            category = spec["category_path"]
        elif kind == "terms":
            brands = tuple(spec["brand.raw"])
        elif kind == "range":
            lo, hi = spec["price"].get("gte"), spec["price"].get("lte")
        else:
            raise AssertionError(f"the emulation does not filter by {clause}")
    return SearchFilters(category=category, brands=brands, price_min=lo, price_max=hi)


def _matcher(filters: SearchFilters) -> Callable[[dict], bool]:
    def ok(src: dict) -> bool:
        if filters.category and filters.category not in (src.get("category_path") or []):
            return False
        if filters.brands and src.get("brand") not in filters.brands:
            return False
        price = src.get("price")
        if filters.price_min is not None and (price is None or price < filters.price_min):
            return False
        return not (filters.price_max is not None and (price is None or price > filters.price_max))

    return ok
