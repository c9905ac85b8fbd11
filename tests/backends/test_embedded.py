"""The backend contract on the embedded engine (tantivy + usearch), plus what only it has:
index files shared by several processes on one machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.conf import settings

from search.backends import _vectors, embedded
from search.backends.base import SearchFilters
from search.backends.embedded import EmbeddedSearchBackend
from tests.backends.contract import BackendContract, ids_of, make_catalog, wait_until
from tests.factories import TEST_DIMS, SearchDocumentFactory, vectors_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def embedded_params(index_dir: Path) -> dict:
    return {"BACKEND": "search.backends.embedded", "INDEX_DIR": index_dir, "INDEX": "products",
            "FIELD_BOOSTS": dict(settings.SEARCH_FIELD_BOOSTS)}


class TestEmbeddedBackend(BackendContract):
    @pytest.fixture
    def index_dir(self, tmp_path) -> Path:
        return tmp_path / "index"

    @pytest.fixture
    def make_backend(self, index_dir):
        return lambda: EmbeddedSearchBackend(embedded_params(index_dir), self.dims)


# -- several processes on one index directory ------------------------------------------------------------
@pytest.fixture
def index_dir(tmp_path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def writer(index_dir) -> EmbeddedSearchBackend:
    backend = EmbeddedSearchBackend(embedded_params(index_dir), TEST_DIMS)
    backend.add_bulk(make_catalog())
    return backend


@pytest.fixture
def reader(index_dir, writer) -> EmbeddedSearchBackend:
    """A second client of the same files, as a web process beside a worker; opened before the writes under test."""
    backend = EmbeddedSearchBackend(embedded_params(index_dir), TEST_DIMS)
    assert backend.count() == len(make_catalog())
    return backend


def test_second_instance_sees_writes_after_the_refresh_interval(writer, reader):
    # given
    doc = SearchDocumentFactory(id=900, title="Velvet Cushion Cover", vectors=vectors_for(900))
    # when
    writer.add_bulk([doc])
    time.sleep(embedded.REFRESH_INTERVAL_S + 0.05)
    # then
    assert ids_of(reader.search_text("cushion")) == [900]
    assert ids_of(reader.search_vector("image", doc.vectors["image"], k=1)) == [900]
    assert reader.count() == len(make_catalog()) + 1


def test_second_instance_sees_deletes_and_upserts(writer, reader):
    # given
    changed = SearchDocumentFactory(id=1, title="Waffle Bath Towel", vectors=vectors_for(1, fields=("text", "fused")))
    # when
    writer.delete([4])
    writer.add_bulk([changed])
    time.sleep(embedded.REFRESH_INTERVAL_S + 0.05)
    # then
    assert 4 not in reader.ids()
    assert 4 not in ids_of(reader.search_vector("text", vectors_for(4)["text"], k=20))
    assert ids_of(reader.search_text("waffle")) == [1]
    assert 1 not in ids_of(reader.search_vector("image", vectors_for(1)["image"], k=20))


def test_second_instance_follows_a_rebuild_swap(writer, reader):
    # when
    with writer.rebuild() as new:
        new.add_bulk([SearchDocumentFactory(id=901, title="Bamboo Towel", vectors=vectors_for(901))])
    time.sleep(embedded.REFRESH_INTERVAL_S + 0.05)
    # then
    assert reader.ids() == {901}
    assert ids_of(reader.search_vector("text", vectors_for(901)["text"], k=3)) == [901]


def test_second_instance_catches_up_across_segment_compaction(writer, reader, monkeypatch):
    # given: a compaction every 3 segments, so the reader's segments vanish under it
    monkeypatch.setattr(_vectors, "COMPACT_AFTER_SEGMENTS", 3)
    docs = [SearchDocumentFactory(id=1000 + i, title=f"Batch item {i}", vectors=vectors_for(1000 + i)) for i in range(8)]
    # when
    for doc in docs:
        writer.add_bulk([doc])
        if doc.id % 3 == 0:
            reader.refresh()
    writer.delete([1003])
    time.sleep(embedded.REFRESH_INTERVAL_S + 0.05)
    # then
    expected = {d.id for d in docs} - {1003}
    assert {h.id for h in reader.search_vector("image", vectors_for(1000)["image"], k=100)} >= expected
    assert 1003 not in reader.ids()
    for doc in docs:
        if doc.id != 1003:
            assert reader.search_vector("fused", doc.vectors["fused"], k=1)[0].id == doc.id


WRITER_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from search.backends.base import SearchDocument
    from search.backends.embedded import EmbeddedSearchBackend

    job = json.loads(sys.argv[1])
    backend = EmbeddedSearchBackend(job["params"], job["dims"])
    docs = [
        SearchDocument(id=d["id"], title=d["title"], price=d["price"],
                       vectors={k: np.asarray(v, np.float32) for k, v in d["vectors"].items()})
        for d in job["add"]
    ]
    backend.add_bulk(docs)
    backend.delete(job["delete"])
    print("written", backend.count())
""")


def run_writer_process(tmp_path: Path, index_dir: Path, add: list, delete: list[int]) -> subprocess.CompletedProcess:
    """Write to the index from a separate Python process (as a Celery worker would)."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    job = {
        "params": {**embedded_params(index_dir), "INDEX_DIR": str(index_dir)},
        "dims": TEST_DIMS,
        "add": [{"id": d.id, "title": d.title, "price": d.price, "vectors": {k: v.tolist() for k, v in d.vectors.items()}} for d in add],
        "delete": delete,
    }
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, str(script), json.dumps(job)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_writes_by_another_process_become_visible(tmp_path, index_dir, writer, reader):
    # given
    doc = SearchDocumentFactory(id=950, title="Jute Door Mat", price=349.0, vectors=vectors_for(950))
    # when
    result = run_writer_process(tmp_path, index_dir, add=[doc], delete=[7])
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"written {len(make_catalog())}"
    assert wait_until(lambda: 950 in reader.ids(), timeout=embedded.REFRESH_INTERVAL_S + 1.0)
    assert ids_of(reader.search_text("door mat")) == [950]
    assert ids_of(reader.search_text(None, filters=SearchFilters(price_max=349))) == [950]
    assert ids_of(reader.search_vector("image", doc.vectors["image"], k=1)) == [950]
    assert 7 not in ids_of(reader.search_text("curtain"))


def test_an_index_built_for_other_encoder_dimensions_asks_for_a_reindex(index_dir, writer):
    # given
    other_dims = {**TEST_DIMS, "text": 32}
    # when / then
    with pytest.raises(ValueError, match="run `manage.py reindex`"):
        EmbeddedSearchBackend(embedded_params(index_dir), other_dims).count()


def test_an_index_keeps_serving_the_fused_dimension_it_was_built_with(index_dir, writer):
    # given a process that expects a new fusion head's 32-d fused vectors (not reindexed yet)
    reader = EmbeddedSearchBackend(embedded_params(index_dir), {**TEST_DIMS, "fused": 32})
    # when it searches the live build, made with 16-d fused vectors
    hits = reader.search_vector("fused", vectors_for(1)["fused"], k=1)
    # then the build's own dimension is used until a rebuild with the new one is swapped in
    assert reader.vector_dims["fused"] == TEST_DIMS["fused"] and ids_of(hits) == [1]
    with reader.rebuild(vector_dims={**TEST_DIMS, "fused": 32}, space={"name": "fusion", "version": "fusion-test", "dim": 32}) as new:
        new.add_bulk([SearchDocumentFactory(id=5, title="New head", vectors=vectors_for(5, {**TEST_DIMS, "fused": 32}))])
    assert reader.vector_dims["fused"] == 32 and reader.index_space()["version"] == "fusion-test"


def test_the_alias_is_a_symlink_to_one_build_and_old_builds_are_pruned(index_dir, writer):
    # when
    for n in range(3):
        with writer.rebuild() as new:
            new.add_bulk([SearchDocumentFactory(id=n, title=f"Build {n}", vectors=vectors_for(n))])
    # then: the live build plus KEEP_BUILDS previous ones
    alias = index_dir / "products"
    assert alias.is_symlink()
    builds = sorted(p.name for p in index_dir.glob("products-*"))
    assert len(builds) == 1 + embedded.KEEP_BUILDS
    assert os.readlink(alias) == builds[-1]
    assert writer.ids() == {2}


# -- BM25 phrase boost ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("phrase_boost", "first"), [(0.0, None), (2.0, 1)])
def test_a_title_holding_the_query_as_a_phrase_ranks_first_only_with_the_phrase_boost(tmp_path, phrase_boost, first):
    # given two titles with the same words, one holding "wine rack" as a phrase
    params = {**embedded_params(tmp_path / "index"), "FIELD_BOOSTS": {**settings.SEARCH_FIELD_BOOSTS, "title_phrase": phrase_boost}}
    backend = EmbeddedSearchBackend(params, TEST_DIMS)
    backend.add_bulk([SearchDocumentFactory(id=1, title="Teak wine rack for glass"),
                      SearchDocumentFactory(id=2, title="Teak wine glass for rack")])
    # when a shopper searches the phrase
    hits = backend.search_text("wine rack", limit=10)
    # then both match; the phrase decides only when it is boosted
    assert sorted(h.id for h in hits) == [1, 2]
    if first is None:
        assert hits[0].score == pytest.approx(hits[1].score)
    else:
        assert hits[0].id == first and hits[0].score > hits[1].score
    # and a one-word query is scored by its terms alone
    one = backend.search_text("rack", limit=10)
    assert one[0].score == pytest.approx(one[1].score)


def test_a_first_build_records_the_fusion_space_the_backend_was_built_with(index_dir):
    # given a backend built with the fusion space in service (get_backend passes it; backends import no app code)
    space = {"name": "bridge", "version": "bridge-0123", "dim": TEST_DIMS["fused"]}
    backend = EmbeddedSearchBackend(embedded_params(index_dir), TEST_DIMS, space=space)
    # when it first writes
    backend.add_bulk(make_catalog()[:1])
    # then its build records that space; one for another dimension would not be recorded
    assert backend.index_space() == space
    other = EmbeddedSearchBackend(embedded_params(index_dir.parent / "other"), TEST_DIMS, space={**space, "dim": 256})
    other.add_bulk(make_catalog()[:1])
    assert other.index_space() is None


def test_backends_need_the_vector_dimensions_the_search_app_provides(monkeypatch):
    # given no index spec (the search app provides one at start-up)
    from django.core.exceptions import ImproperlyConfigured

    import search.backends as registry

    monkeypatch.setattr(registry, "_index_spec", None)
    # when / then
    with pytest.raises(ImproperlyConfigured, match="No index spec for search backends"):
        registry.load_backend("default")
    assert registry.load_backend("default", vector_dims=TEST_DIMS).vector_dims == TEST_DIMS
