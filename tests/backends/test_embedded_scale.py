"""The embedded engine's large-catalog paths on small data: bulk rebuilds (vectors straight into the
graphs, no segments), the HNSW base with a delta of later writes, the float16 vector store, and
index files shared by reader processes instead of copied into each."""

from __future__ import annotations

import numpy as np
import pytest

from search.backends import _vectors
from search.backends.base import SearchFilters
from tests.backends.test_embedded import embedded_params
from tests.factories import TEST_DIMS, SearchDocumentFactory, vectors_for

N = 600


def catalog(n: int = N, start: int = 1, version: str = ""):
    return [SearchDocumentFactory(id=i, title=f"Item {i}", category_path=["Sale" if i % 3 == 0 else "Regular"], price=float(i),
                                  vectors=vectors_for(f"{i}{version}")) for i in range(start, start + n)]


@pytest.fixture
def graph_path(monkeypatch):
    """Force graph search at this size (else a few hundred vectors are searched exactly)."""
    monkeypatch.setattr(_vectors, "EXACT_UNFILTERED_MAX", 10)
    monkeypatch.setattr(_vectors, "EXACT_SEARCH_MAX", 10)


@pytest.fixture
def make_backend(tmp_path):
    from search.backends.embedded import EmbeddedSearchBackend

    return lambda: EmbeddedSearchBackend(embedded_params(tmp_path / "index"), TEST_DIMS)


def test_a_bulk_rebuild_writes_no_segments_and_serves_every_product_by_graph(make_backend, graph_path, monkeypatch):
    # given: flushes every 128 documents, so the build spans several graph insertions
    monkeypatch.setattr(_vectors, "BULK_FLUSH", 128)
    backend = make_backend()
    docs = catalog()
    # when
    with backend.rebuild(size_hint=N) as new:
        for i in range(0, N, 50):
            new.add_bulk(docs[i:i + 50])
        assert not list(new._open().vectors.path.glob("seg-*.npz"))
    # then: each product is its own nearest neighbour, found through the graph, with an exact score
    reader = make_backend()
    for doc in docs[::37]:
        hit = reader.search_vector("image", doc.vectors["image"], k=1)[0]
        assert hit.id == doc.id and hit.score == pytest.approx(1.0, abs=1e-5)
    assert reader.count() == N and reader.describe()["vectors"] == {"text": N, "image": N, "fused": N}


def test_a_bulk_rebuild_keeps_the_last_version_of_a_product_and_drops_deleted_ones(make_backend, monkeypatch):
    # given
    monkeypatch.setattr(_vectors, "BULK_FLUSH", 100)
    backend = make_backend()
    first, second = catalog(300), catalog(50, version="-v2")
    # when: 1..300 written, then 1..50 rewritten with new vectors, then 51..60 deleted, across flushes
    with backend.rebuild(size_hint=300) as new:
        new.add_bulk(first)
        new.add_bulk(second)
        new.delete(list(range(51, 61)))
    # then
    assert backend.count() == 290
    assert backend.search_vector("text", second[0].vectors["text"], k=1)[0].id == 1
    np.testing.assert_allclose(backend.get_vectors("text", [1])[1], second[0].vectors["text"], atol=1e-6)
    assert not set(backend.get_vectors("text", list(range(51, 61))))
    assert not {h.id for h in backend.search_vector("image", first[55].vectors["image"], k=20)} & set(range(51, 61))


def test_a_reader_sees_updates_and_deletes_of_graph_products_through_the_delta(make_backend, graph_path):
    # given: a base built by a rebuild, and a second process's view of it
    writer, reader = make_backend(), make_backend()
    docs = catalog()
    with writer.rebuild(size_hint=N) as new:
        new.add_bulk(docs)
    reader.refresh()
    moved = SearchDocumentFactory(id=7, title="Item 7", category_path=["Regular"], price=7.0, vectors=vectors_for("7-moved"))
    # when: one product changes its vectors, another is deleted (small writes: segments, not a new base)
    writer.add_bulk([moved])
    writer.delete([8])
    reader.refresh()
    # then: the new vector finds it, the old one does not, the deleted one is gone, filters still hold
    assert reader.search_vector("fused", moved.vectors["fused"], k=1)[0].id == 7
    assert 7 not in [h.id for h in reader.search_vector("fused", docs[6].vectors["fused"], k=3)]
    assert 8 not in [h.id for h in reader.search_vector("text", docs[7].vectors["text"], k=50)]
    on_sale = reader.search_vector("text", docs[8].vectors["text"], k=10, filters=SearchFilters(category="Sale"))
    assert len(on_sale) == 10 and all(h.id % 3 == 0 for h in on_sale) and on_sale[0].id == 9


def test_large_builds_keep_vectors_in_float16_with_scores_within_1e3(make_backend, graph_path, monkeypatch):
    # given: the float16 threshold lowered to this catalog's size
    monkeypatch.setattr(_vectors, "STORE_FLOAT16_MIN", 100)
    backend = make_backend()
    docs = catalog()
    # when
    with backend.rebuild(size_hint=N) as new:
        new.add_bulk(docs)
    # then: the store is float16 (half of float32) and answers stay right
    build = backend._open(force=True)
    store = build.vectors.fields["image"].store
    assert store.dtype == np.float16 and store.shape == (N, TEST_DIMS["image"])
    query = docs[100].vectors["image"]
    hits = backend.search_vector("image", query, k=5)
    exact = sorted(((float(d.vectors["image"] @ query), d.id) for d in docs), reverse=True)[:5]
    assert [h.id for h in hits] == [i for _, i in exact]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in exact], abs=1e-3)
    np.testing.assert_allclose(backend.get_vectors("image", [101])[101], query, atol=1e-3)


def test_reader_processes_map_the_index_files_instead_of_copying_them(make_backend, graph_path):
    # given
    backend = make_backend()
    with backend.rebuild(size_hint=N) as new:
        new.add_bulk(catalog())
    # when
    field = backend._open(force=True).vectors.fields["image"]
    # then: the vectors are a read-only map of the store file, not an array in the process
    assert isinstance(field.store, np.memmap) and str(field.store.filename) == str(field.store_path)
    assert not field.store.flags.writeable


def test_compaction_keeps_a_field_no_write_touched(make_backend, graph_path, monkeypatch):
    # given: a base, then writes of text and fused vectors only (every image vector untouched)
    monkeypatch.setattr(_vectors, "COMPACT_AFTER_SEGMENTS", 2)
    backend = make_backend()
    docs = catalog()
    with backend.rebuild(size_hint=N) as new:
        new.add_bulk(docs)
    # when: two segments fold into a new base
    backend.add_bulk([SearchDocumentFactory(id=5000, title="New", vectors=vectors_for(5000, fields=("text", "fused")))])
    backend.add_bulk([SearchDocumentFactory(id=5001, title="New too", vectors=vectors_for(5001, fields=("text", "fused")))])
    # then
    assert not list(backend._open(force=True).vectors.path.glob("seg-*.npz"))
    assert backend.search_vector("image", docs[3].vectors["image"], k=1)[0].id == docs[3].id
    assert backend.search_vector("text", vectors_for(5001)["text"], k=1)[0].id == 5001
    assert backend.describe()["vectors"] == {"text": N + 2, "image": N, "fused": N + 2}


def test_an_opened_index_searches_with_its_size_tiers_beam_and_re_rank_count(make_backend, graph_path, monkeypatch):
    # given: a catalog of N products, and size tiers whose tier for N re-ranks 150 candidates with a beam of 300
    from search.backends import _hnsw

    monkeypatch.setattr(_hnsw, "HNSW_TIERS", ((N // 2, 16, 64, 64, 40), (N * 2, 16, 64, 300, 150), (1 << 62, 16, 64, 64, 40)))
    with make_backend().rebuild(size_hint=N) as new:
        new.add_bulk(catalog())
    asked = []
    search = _hnsw.Graph.search
    monkeypatch.setattr(_hnsw.Graph, "search", lambda self, vector, count: asked.append((self.ef, count)) or search(self, vector, count))
    doc = catalog()[123]
    # when: a new process opens the index and asks for the 10 nearest products
    hits = make_backend().search_vector("text", doc.vectors["text"], k=10)
    # then: the graph was asked for the tier's 150 candidates with its beam, and the answer is exact
    assert asked == [(300, 150)]
    assert hits[0].id == doc.id and hits[0].score == pytest.approx(1.0, abs=1e-5) and len(hits) == 10
