"""Only complete builds are kept for rollback: a build left by a dead rebuild is never kept or swapped in.

The embedded engine runs on real files; the Elasticsearch backend runs against the recorded
fake cluster of ``fake_es.py`` (a stand-in: no Elasticsearch server can run here), with the
real client. A killed ``manage.py reindex`` on the embedded engine is tested end to end in
``tests/test_reindex.py``.
"""

from __future__ import annotations

import fcntl
import json

from search.backends.embedded import BUILDING_FILE, COMPLETE_FILE, EmbeddedSearchBackend
from tests.backends.conftest import product_doc
from tests.backends.test_embedded import embedded_params
from tests.factories import TEST_DIMS, SearchDocumentFactory, vectors_for


def doc(n: int):
    return SearchDocumentFactory(id=n, title=f"Build {n}", vectors=vectors_for(n))


# -- embedded -------------------------------------------------------------------------------------------------
def test_embedded_keeps_the_newest_complete_builds_and_deletes_dead_incomplete_ones(tmp_path):
    # given a live build and a complete previous one (the first build)
    root = tmp_path / "index"
    backend = EmbeddedSearchBackend(embedded_params(root), TEST_DIMS)
    backend.add_bulk([doc(1)])
    first = backend.alias.resolve()
    with backend.rebuild() as new:
        new.add_bulk([doc(2)])
    live = backend.alias.resolve()
    # and two newer folders without a completeness marker: one a dead rebuild's (nobody holds
    # it), one a rebuild still running in another process (it holds the flock on .building)
    dead = root / "products-29990101T000000000000"
    partial = EmbeddedSearchBackend(embedded_params(root), TEST_DIMS, build_dir=dead)
    dead.mkdir()
    partial.add_bulk([doc(3)])
    running = root / "products-29990102T000000000000"
    running.mkdir()
    holder = open(running / BUILDING_FILE, "a+")
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        # when the next rebuild swaps in, keeping one previous build
        with backend.rebuild(keep=1) as new:
            new.add_bulk([doc(4)])
        # then the previous build kept is the last complete one; the dead one is gone; the running one stays
        assert backend.previous_builds() == [(live.name, True), (running.name, False)]
        assert not dead.exists() and not first.exists()
        assert backend.ids() == {4}
        marker = json.loads((backend.alias.resolve() / COMPLETE_FILE).read_text())
        assert marker["documents"] == 1 and marker["completed_at"]
    finally:
        holder.close()
    # when its builder is gone (the flock released), the next prune deletes it too
    previous = backend.alias.resolve()
    with backend.rebuild(keep=1) as new:
        new.add_bulk([doc(5)])
    assert backend.previous_builds() == [(previous.name, True)]
    assert not running.exists()


def test_embedded_a_failed_rebuild_leaves_no_folder_and_the_live_build_marked_complete(tmp_path):
    root = tmp_path / "index"
    backend = EmbeddedSearchBackend(embedded_params(root), TEST_DIMS)
    backend.add_bulk([doc(1)])
    live = backend.alias.resolve()
    (live / COMPLETE_FILE).unlink()  # a live build made before builds were marked
    try:
        with backend.rebuild() as new:
            new.add_bulk([doc(2)])
            raise RuntimeError("encoder crashed")
    except RuntimeError:
        pass
    assert backend.previous_builds() == []
    assert (live / COMPLETE_FILE).is_file()  # it was live, hence complete
    assert backend.ids() == {1}


# -- Elasticsearch (fake cluster) --------------------------------------------------------------------------------
def test_elasticsearch_never_keeps_a_dead_build_and_keep_1_keeps_the_last_complete_one(fake_es):
    # given a live build and the first build as the complete previous one
    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1)])
    with backend.rebuild() as new:
        new.add_bulk([product_doc(1), product_doc(2)])
    (live,) = cluster.aliases["products"]
    # and a reindex killed while filling its build: its block is entered and never left
    dying = backend.rebuild()
    half = dying.__enter__()
    half.add_bulk([product_doc(1)])
    dead = half._build_index
    # when another process's reindex swaps in, keeping one previous build
    other, _ = fake_es(cluster=cluster)
    space = {"name": "bridge", "version": "bridge-test", "dim": other.vector_dims["fused"]}
    with other.rebuild(keep=1, vector_dims=dict(other.vector_dims), space=space) as new:
        new.add_bulk([product_doc(1), product_doc(2)])
    (newest,) = cluster.aliases["products"]
    # then the dead build is deleted and the previous kept is the last complete one
    assert other.builds() == [live, newest]
    assert dead not in cluster.indices
    for index in (live, newest):
        assert cluster.indices[index]["mappings"]["_meta"]["build"]["complete"] is True
    assert cluster.indices[newest]["mappings"]["_meta"]["build"]["documents"] == 2
    assert cluster.indices[newest]["mappings"]["_meta"]["fusion_space"] == space  # kept beside the marker
    assert other.index_space() == space
    del dying  # the abandoned block is closed only now (it would delete its index)


def test_elasticsearch_leaves_an_incomplete_build_newer_than_the_live_one(fake_es):
    """A build newer than the live one may still be filling in another process: pruning leaves it."""
    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1)])
    filling = backend.rebuild()
    new = filling.__enter__()
    new.add_bulk([product_doc(1)])
    assert backend._prune(keep=0) == []
    assert new._build_index in cluster.indices
    filling.__exit__(None, None, None)
    assert cluster.aliases["products"] == {new._build_index: {}}
