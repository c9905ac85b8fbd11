"""kNN recall@10 of the embedded engine's HNSW path against exact search (numpy).

DESIGN.md asks for recall >= 0.95, filtered or not. The vectors are random but clustered
(200 centres, neighbours at cosine ~0.55, close to what MiniLM gives for related products),
384-d like the text vectors. Exact search is forced off by lowering ``EXACT_SEARCH_MAX``.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings

from search.backends import _vectors
from search.backends.base import SearchDocument, SearchFilters
from search.backends.embedded import EmbeddedSearchBackend

pytestmark = pytest.mark.slow

N_DOCS = 20_000
DIM = 384
N_CLUSTERS = 200
NOISE = 1.0
N_QUERIES = 200
K = 10
REQUIRED_RECALL = 0.95


def clustered_unit_vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    points = centres[rng.integers(0, len(centres), n)] + NOISE * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def recall_at_k(found: list[list[int]], exact: list[list[int]]) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)]))


def exact_top_k(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, mask: np.ndarray | None = None) -> list[list[int]]:
    sims = queries @ vectors.T
    if mask is not None:
        sims[:, ~mask] = -np.inf
    top = np.argsort(-sims, axis=1)[:, :K]
    return [[int(ids[j]) for j in row] for row in top]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """20k clustered vectors in an embedded index; 30% of the products are in category "Sale"."""
    rng = np.random.default_rng(2024)
    centres = rng.standard_normal((N_CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered_unit_vectors(rng, centres, N_DOCS)
    ids = np.arange(1, N_DOCS + 1)
    on_sale = rng.random(N_DOCS) < 0.3
    queries = clustered_unit_vectors(rng, centres, N_QUERIES)
    params = {"INDEX_DIR": tmp_path_factory.mktemp("recall-index"), "FIELD_BOOSTS": settings.SEARCH_FIELD_BOOSTS}
    backend = EmbeddedSearchBackend(params, {"text": DIM, "image": 8, "fused": 8})
    backend.add_bulk([
        SearchDocument(id=int(i), title=f"item {i}", category_path=["Sale" if sale else "Regular"], vectors={"text": v})
        for i, v, sale in zip(ids, vectors, on_sale, strict=True)
    ])
    return backend, vectors, ids, on_sale, queries


@pytest.fixture
def hnsw_only(monkeypatch):
    monkeypatch.setattr(_vectors, "EXACT_SEARCH_MAX", 100)


def test_unfiltered_hnsw_recall_at_10_is_at_least_095(corpus, hnsw_only):
    # given
    backend, vectors, ids, _, queries = corpus
    # when
    found = [[h.id for h in backend.search_vector("text", q, k=K)] for q in queries]
    # then
    assert all(len(f) == K for f in found)
    assert recall_at_k(found, exact_top_k(vectors, ids, queries)) >= REQUIRED_RECALL


def test_filtered_hnsw_recall_at_10_is_at_least_095_and_returns_k(corpus, hnsw_only):
    # given
    backend, vectors, ids, on_sale, queries = corpus
    # when
    found = [[h.id for h in backend.search_vector("text", q, k=K, filters=SearchFilters(category="Sale"))] for q in queries]
    # then
    assert all(len(f) == K for f in found)
    assert set().union(*found) <= set(ids[on_sale].tolist())
    assert recall_at_k(found, exact_top_k(vectors, ids, queries, on_sale)) >= REQUIRED_RECALL


def test_hnsw_recall_holds_after_deletes_and_never_returns_a_deleted_id(corpus, hnsw_only):
    # given: 10% of the catalog deleted (marked deleted in the graph, not rebuilt)
    backend, vectors, ids, _, queries = corpus
    gone = np.zeros(N_DOCS, bool)
    gone[np.random.default_rng(5).choice(N_DOCS, N_DOCS // 10, replace=False)] = True
    backend.delete(ids[gone].tolist())
    # when
    found = [[h.id for h in backend.search_vector("text", q, k=K)] for q in queries]
    # then
    assert not set().union(*found) & set(ids[gone].tolist())
    assert recall_at_k(found, exact_top_k(vectors, ids, queries, ~gone)) >= REQUIRED_RECALL


@pytest.fixture(scope="module")
def bulk_float16_corpus(tmp_path_factory):
    """The same 20k vectors built the way ``reindex`` builds a large catalog: a bulk rebuild (vectors
    straight into the graph) keeping them in float16 (the store of builds of >= STORE_FLOAT16_MIN)."""
    rng = np.random.default_rng(2024)
    centres = rng.standard_normal((N_CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered_unit_vectors(rng, centres, N_DOCS)
    ids = np.arange(1, N_DOCS + 1)
    on_sale = rng.random(N_DOCS) < 0.3
    queries = clustered_unit_vectors(rng, centres, N_QUERIES)
    params = {"INDEX_DIR": tmp_path_factory.mktemp("recall-bulk-index"), "FIELD_BOOSTS": settings.SEARCH_FIELD_BOOSTS}
    backend = EmbeddedSearchBackend(params, {"text": DIM, "image": 8, "fused": 8})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_vectors, "STORE_FLOAT16_MIN", 1000)
        with backend.rebuild(size_hint=N_DOCS) as new:
            new.add_bulk([
                SearchDocument(id=int(i), title=f"item {i}", category_path=["Sale" if sale else "Regular"], vectors={"text": v})
                for i, v, sale in zip(ids, vectors, on_sale, strict=True)
            ])
    return backend, vectors, ids, on_sale, queries


def test_bulk_built_float16_index_keeps_recall_at_10_at_least_095_filtered_or_not(bulk_float16_corpus, hnsw_only):
    # given
    backend, vectors, ids, on_sale, queries = bulk_float16_corpus
    assert backend._open().vectors.fields["text"].store.dtype == np.float16
    # when
    found = [[h.id for h in backend.search_vector("text", q, k=K)] for q in queries]
    on_sale_found = [[h.id for h in backend.search_vector("text", q, k=K, filters=SearchFilters(category="Sale"))] for q in queries]
    # then
    assert recall_at_k(found, exact_top_k(vectors, ids, queries)) >= REQUIRED_RECALL
    assert all(len(f) == K for f in on_sale_found) and set().union(*on_sale_found) <= set(ids[on_sale].tolist())
    assert recall_at_k(on_sale_found, exact_top_k(vectors, ids, queries, on_sale)) >= REQUIRED_RECALL
