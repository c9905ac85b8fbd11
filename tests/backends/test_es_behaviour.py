"""Behaviour of the Elasticsearch backend with a recorded transport standing in for a cluster.

The official client runs for real; only its HTTP node is replaced by ``fake_es.FakeNode``,
which answers like a cluster would (response shapes from the API specification). No
Elasticsearch server runs on these machines.
"""

from __future__ import annotations

import numpy as np
import pytest

from search.backends.base import DocumentsRejected, SearchBackendError, SearchFilters, SearchUnavailable
from search.backends.retrieval import TextRetrieval, VectorRetrieval
from tests.backends.conftest import product_doc, unit
from tests.backends.fake_es import FakeCluster

MAPPER_ERROR = {
    "type": "document_parsing_exception",
    "reason": "[1:42] failed to parse field [price] of type [scaled_float] in document with id '2'. Preview of field's value: 'abc'",
    "caused_by": {"type": "number_format_exception", "reason": 'For input string: "abc"'},
}


def bulk_ids(request) -> list[str]:
    return [next(iter(line.values()))["_id"] for line in request.body if set(line) & {"index", "delete", "create"}]


# -- bulk indexing -------------------------------------------------------------------------------------
def test_bulk_partial_failure_rejects_one_document_and_writes_the_rest(fake_es):
    # given a cluster that refuses product 2 for a mapping error
    backend, cluster = fake_es()
    cluster.reject_item(2, 400, MAPPER_ERROR)
    # when three products are written
    with pytest.raises(DocumentsRejected) as caught:
        backend.add_bulk([product_doc(1), product_doc(2), product_doc(3)])
    # then product 2 is reported with the field, and 1 and 3 are in the index
    assert list(caught.value.rejected) == [2]
    assert caught.value.rejected[2].startswith("field 'price': document_parsing_exception")
    assert sorted(caught.value.indexed) == [1, 3]
    backend.refresh()
    assert backend.ids() == {1, 3}


def test_wrong_dimension_vector_refuses_the_batch_before_sending(fake_es):
    backend, cluster = fake_es()
    bad = product_doc(5, vectors={"text": unit(1, 7), "fused": unit(2, 8)})
    with pytest.raises(ValueError, match="has 7 dimensions; the index expects 8"):
        backend.add_bulk([product_doc(6), bad])
    assert cluster.sent("PUT", "/_bulk") == []


def test_all_zero_vector_rejects_that_document_only(fake_es):
    backend, cluster = fake_es()
    bad = product_doc(5, vectors={"text": np.zeros(8, np.float32)})
    with pytest.raises(DocumentsRejected) as caught:
        backend.add_bulk([bad, product_doc(6)])
    assert "all zeros" in caught.value.rejected[5]
    assert bulk_ids(cluster.sent("PUT", "/_bulk")[0]) == ["6"]


def test_bulk_429_items_are_retried_then_succeed(fake_es):
    backend, cluster = fake_es()
    cluster.reject_item(2, 429, {"type": "es_rejected_execution_exception", "reason": "rejected execution"}, times=2)
    backend.add_bulk([product_doc(1), product_doc(2)])
    bulks = cluster.sent("PUT", "/_bulk")
    assert [bulk_ids(b) for b in bulks] == [["1", "2"], ["2"], ["2"]]  # only the refused document is resent
    backend.refresh()
    assert backend.ids() == {1, 2}


def test_bulk_429_beyond_the_retries_is_transient(fake_es):
    backend, cluster = fake_es(BULK_MAX_RETRIES=1)
    cluster.reject_item(2, 429, {"type": "es_rejected_execution_exception", "reason": "rejected execution"}, times=5)
    with pytest.raises(SearchUnavailable, match="1 of 2 documents"):
        backend.add_bulk([product_doc(1), product_doc(2)])


def test_whole_request_429_and_503_are_retried_by_the_client(fake_es):
    backend, cluster = fake_es()
    backend.count()  # index and aliases exist
    cluster.fail("PUT", r"^/_bulk$", 429)
    cluster.fail("PUT", r"^/_bulk$", 503)
    backend.add_bulk([product_doc(1)])
    assert len(cluster.sent("PUT", "/_bulk")) == 3
    backend.refresh()
    assert backend.count() == 1


def test_search_answered_503_too_often_is_unavailable(fake_es):
    backend, cluster = fake_es(MAX_RETRIES=2)
    backend.count()
    cluster.fail("POST", r"/_search$", 503, times=3)
    with pytest.raises(SearchUnavailable, match="HTTP 503"):
        backend.search_text("towel")


# -- version detection -----------------------------------------------------------------------------------
def hybrid_search(backend, text: str, vectors: dict, *, method: str = "rrf", weights: dict | None = None, filters: SearchFilters | None = None):
    """A storefront query through ``search.hybrid`` (which decides whether the cluster fuses), with vectors given."""
    from search.embedding.encoding import QueryVectors
    from search.hybrid.pipeline import HybridQuery, ranked_matches
    from search.hybrid.retrievers import blend_weights

    query = HybridQuery(text=text, vectors=QueryVectors(**vectors), weights=blend_weights(space=None, photo=False, overrides=weights),
                        best=None)
    return ranked_matches(backend=backend, query=query, filters=filters or SearchFilters(), method=method)


@pytest.mark.parametrize(
    ("version", "method", "weights", "expected"),
    [
        ("8.15.3", "rrf", {}, "client"),
        ("8.16.0", "rrf", {}, "retriever"),
        ("8.16.0", "rrf", {"fused_knn": 0.5}, "client"),  # weighted RRF needs 9.2
        ("9.2.0", "rrf", {"fused_knn": 0.5}, "retriever"),
        ("8.17.4", "linear", {}, "client"),
        ("8.18.0", "linear", {}, "retriever"),
        ("9.0.0", "linear", {"bm25": 3.0}, "retriever"),
    ],
)
def test_version_decides_between_retrievers_and_client_fusion(fake_es, settings, version, method, weights, expected):
    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.0, "image": 0.0, "fused": 0.0}  # a floored rule is never compiled (next test)
    settings.SEARCH_MATCH_MIN_COVERAGE = 0.0  # nor one with the match cut-off
    settings.SEARCH_EXACT_MATCH_BOOST, settings.SEARCH_EXACT_ENOUGH, settings.SEARCH_KNN_ONLY_MIN_COSINE = 0.0, 0, {}  # read coverage too
    settings.SEARCH_WEIGHTS = {**settings.SEARCH_WEIGHTS, "bm25": 1.0}  # each case's weights over equal ones
    backend, cluster = fake_es(version=version)
    hybrid_search(backend, "cotton towel", {"text": unit(1, 8), "fused": unit(2, 8)}, method=method, weights=weights)
    searches = cluster.sent("POST", "/_search$")
    if expected == "retriever":
        assert len(searches) == 1 and method in searches[0].body["retriever"]
        assert cluster.sent("POST", "/_msearch$") == []
    else:  # search.hybrid fuses: every list in one round trip
        (msearch,) = cluster.sent("POST", "/_msearch$")
        bodies = msearch.body[1::2]
        assert searches == [] and len(bodies) == 3 and all("retriever" not in b for b in bodies)
    assert len(cluster.sent("GET", "^/$")) == 1  # the version is asked once


@pytest.mark.parametrize("method", ["rrf", "linear"])
def test_a_rule_with_a_knn_floor_is_fused_by_search_hybrid_even_where_the_cluster_has_retrievers(fake_es, settings, method):
    # given a 9.2 cluster (rrf with weights, linear) and the storefront's kNN floor on the text field
    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.5, "image": 0.0, "fused": 0.0}
    backend, cluster = fake_es(version="9.2.0")
    # when
    hybrid_search(backend, "cotton towel", {"text": unit(1, 8), "fused": unit(2, 8)}, method=method)
    # then the floor decides membership after fusing the full lists, which no retriever request can: the lists come in one _msearch
    assert [r for r in cluster.sent("POST", "/_search$") if "retriever" in r.body] == []
    (msearch,) = cluster.sent("POST", "/_msearch$")
    assert len(msearch.body[1::2]) == 3


@pytest.mark.parametrize(("version", "header"), [("8.13.4", "compatible-with=8"), ("9.1.0", "compatible-with=9")])
def test_compatibility_header_follows_the_cluster_major(fake_es, version, header):
    backend, cluster = fake_es(version=version)
    backend.search_text("towel")
    assert "compatible-with" not in cluster.sent("GET", "^/$")[0].headers["accept"]
    assert header in cluster.sent("POST", "/_search$")[0].headers["accept"]


def test_cluster_older_than_8_12_is_refused_with_the_reason(fake_es):
    backend, _ = fake_es(version="8.11.1")
    with pytest.raises(SearchBackendError, match="older than 8.12.0"):
        backend.search_text("towel")


def test_client_fusion_ranks_like_search_ranking(fake_es, settings):
    """Without retrievers: BM25 and kNN lists in one ``_msearch``, fused by ``search.hybrid``; explanations list each retriever."""
    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.0, "image": 0.0, "fused": 0.0}  # fusion alone here; the floor has its own test
    cluster = FakeCluster(version="8.12.0")

    def hits(index, body):
        order = [3, 1, 2] if "query" in body else [2, 3, 1]
        score = 5.0 if "query" in body else 0.9
        return [{"_index": index, "_id": str(i), "_score": score - n * 0.1} for n, i in enumerate(order)]

    cluster.search_hits = hits
    backend, _ = fake_es(cluster=cluster)
    fused = hybrid_search(backend, "towel", {"text": unit(1, 8)}, method="rrf", weights={"bm25": 1.0, "text_knn": 1.0})
    assert [r.id for r in fused] == [3, 2, 1]
    explain = fused[0].explain()
    assert explain["bm25"]["rank"] == 1 and explain["text_knn"]["rank"] == 2
    assert explain["text_knn"]["raw"] == pytest.approx(2 * 0.8 - 1, abs=1e-6)  # cosine, not Elasticsearch's (1 + cos) / 2


def test_client_fusion_drops_knn_hits_below_the_knn_floor(fake_es, settings):
    """Fused by ``search.hybrid``, the storefront's floor still applies: a kNN hit under the floor (a cosine) is not a result."""
    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.625, "image": 0.5, "fused": 0.5}  # 0.625 x the best cosine 0.8 = 0.5
    cluster = FakeCluster(version="8.12.0")
    cluster.search_hits = lambda index, body: (
        [] if "query" in body else [{"_index": index, "_id": str(i), "_score": s} for i, s in ((1, 0.9), (2, 0.8), (3, 0.6))]
    )
    backend, _ = fake_es(cluster=cluster)
    # Elasticsearch scores (1 + cos) / 2: the hits' cosines are 0.8, 0.6 and 0.2
    fused = hybrid_search(backend, "towel", {"text": unit(1, 8)}, method="rrf")
    assert [r.id for r in fused] == [1, 2]


# -- alias swaps ---------------------------------------------------------------------------------------------
def test_rebuild_fills_a_new_index_then_swaps_both_aliases_atomically(fake_es):
    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1)])
    old = cluster.sent("PUT", r"^/products-\d")[0].path.strip("/")
    start = len(cluster.requests)
    with backend.rebuild() as new:
        new.add_bulk([product_doc(1), product_doc(2)])
        assert backend.count() == 1  # searches still answered by the live index during the build
    steps = [(r.method, r.path, r.body) for r in cluster.requests[start:]]
    new_index = steps[0][1].strip("/")
    assert steps[0][0] == "PUT" and steps[0][2]["settings"]["index"]["refresh_interval"] == "-1"
    assert ("PUT", f"/{old}/_settings", {"index": {"blocks": {"write": True}}}) in steps
    swap = next(body for method, path, body in steps if path == "/_aliases")
    assert swap["actions"] == [
        {"remove": {"index": old, "alias": "products"}},
        {"remove": {"index": old, "alias": "products-write"}},
        {"add": {"index": new_index, "alias": "products"}},
        {"add": {"index": new_index, "alias": "products-write", "is_write_index": True}},
    ]
    order = [path for _, path, _ in steps]
    assert order.index(f"/{new_index}/_count") < order.index("/_aliases") < order.index(f"/{old}/_settings", order.index("/_aliases"))
    assert ("PUT", f"/{old}/_settings", {"index": {"blocks": {"write": False}}}) in steps[order.index("/_aliases"):]
    assert backend.count() == 2 and cluster.aliases["products"] == {new_index: {}}
    assert old in cluster.indices  # kept for rollback (KEEP_BUILDS = 1)


def test_rebuild_keep_zero_deletes_previous_builds(fake_es):
    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1)])
    for _ in range(2):
        with backend.rebuild(keep=0) as new:
            new.add_bulk([product_doc(1)])
    assert len(backend.builds()) == 1 and len(cluster.indices) == 1


def test_failed_build_is_discarded_and_the_live_index_stays(fake_es):
    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1)])
    live = dict(cluster.aliases)
    with pytest.raises(RuntimeError):
        with backend.rebuild() as new:
            new.add_bulk([product_doc(2)])
            raise RuntimeError("embedding crashed")
    assert cluster.aliases == live and len(cluster.indices) == 1


def test_count_mismatch_keeps_the_live_index(fake_es):
    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1)])
    live = dict(cluster.aliases)

    def lose_a_document(new):
        cluster.indices[new._build_index]["docs"].pop("2")  # a write the cluster lost

    with pytest.raises(SearchBackendError, match="holds 1 documents but 2 were written"):
        with backend.rebuild(before_swap=lose_a_document) as new:
            new.add_bulk([product_doc(1), product_doc(2)])
    assert cluster.aliases == live
    assert not any(i["blocked"] for i in cluster.indices.values())  # the live index accepts writes again


def test_live_writes_during_the_swap_wait_and_land_in_the_new_index(fake_es):
    import threading

    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1)])
    waited = []

    def concurrent_write(new):
        writer = threading.Thread(target=backend.add_bulk, args=([product_doc(9)],))
        writer.start()
        writer.join(0.5)
        waited.append(writer.is_alive())  # still waiting: the live index refuses writes during the swap
        concurrent_write.writer = writer

    with backend.rebuild(before_swap=concurrent_write) as new:
        new.add_bulk([product_doc(1)])
    concurrent_write.writer.join(10)
    backend.refresh()
    assert waited == [True]
    assert backend.ids() == {1, 9}


def test_a_write_blocked_too_long_is_transient(fake_es):
    backend, cluster = fake_es(WRITE_BLOCK_WAIT_S=0.3)
    backend.add_bulk([product_doc(1)])
    for index in cluster.indices.values():
        index["blocked"] = True
    with pytest.raises(SearchUnavailable, match="cluster_block_exception"):
        backend.add_bulk([product_doc(2)])


def _cluster_with_live_mapping(mapping: dict) -> FakeCluster:
    cluster = FakeCluster()
    cluster.indices["products-00000000-000000-000000"] = {"mappings": mapping, "settings": {}, "docs": {}, "blocked": False}
    cluster.aliases = {"products": {"products-00000000-000000-000000": {}}, "products-write": {"products-00000000-000000-000000": {"is_write_index": True}}}
    return cluster


def test_mapping_conflict_names_the_field(fake_es):
    cluster = _cluster_with_live_mapping({"properties": {"text_vector": {"type": "dense_vector", "dims": 256}}})
    backend, _ = fake_es(cluster=cluster)
    with pytest.raises(SearchBackendError, match="field 'text_vector' holds 256-dimensional vectors but the encoders produce 8"):
        backend.add_bulk([product_doc(1)])


def test_the_live_index_keeps_its_fusion_space_until_a_rebuild_swaps(fake_es):
    # given a live build made with a 256-d fusion head, and a process expecting 8-d fused vectors
    space = {"name": "fusion", "version": "fusion-0123abcd", "dim": 256}
    cluster = _cluster_with_live_mapping(
        {"properties": {"fused_vector": {"type": "dense_vector", "dims": 256}}, "_meta": {"fusion_space": space}}
    )
    backend, _ = fake_es(cluster=cluster)
    # then it serves the live build's head and dimension
    assert backend.index_space() == space and backend.vector_dims["fused"] == 256
    # when a rebuild is made with another head, the new build records it in its mapping
    other = {"name": "fusion", "version": "fusion-4567cdef", "dim": 8}
    with backend.rebuild(vector_dims={**backend.vector_dims, "fused": 8}, space=other) as new:
        new.add_bulk([product_doc(1)])
    created = cluster.sent("PUT", r"^/products-2")[0].body
    assert created["mappings"]["_meta"] == {"fusion_space": other}
    assert created["mappings"]["properties"]["fused_vector"]["dims"] == 8
    assert backend.index_space() == other and backend.vector_dims["fused"] == 8


# -- failures and bad input -----------------------------------------------------------------------------------
def test_cluster_down_is_search_unavailable(fake_es):
    backend, cluster = fake_es(MAX_RETRIES=1)
    cluster.down = True
    for call in (
        lambda: backend.search_text("towel"),
        lambda: backend.search_vector("text", unit(1, 8)),
        lambda: backend.search_many([TextRetrieval("bm25", "towel"), VectorRetrieval("text_knn", "text", unit(1, 8))]),
        lambda: backend.fusion_support(),
        lambda: backend.add_bulk([product_doc(1)]),
        lambda: backend.count(),
    ):
        with pytest.raises(SearchUnavailable, match="did not answer"):
            call()


def test_cluster_down_falls_back_to_the_embedded_engine_when_configured(fake_es, settings, tmp_path, monkeypatch):
    from search.backends import get_backend, reset_backends
    from search.embedding import encoding
    from tests.backends.conftest import DIMS

    monkeypatch.setattr(encoding, "vector_dims", lambda: dict(DIMS))
    settings.SEARCH_BACKENDS = {**settings.SEARCH_BACKENDS, "fallback": {"BACKEND": "search.backends.embedded", "INDEX_DIR": tmp_path}}
    reset_backends()
    try:
        embedded = get_backend("fallback")
        embedded.add_bulk([product_doc(1), product_doc(2, title="Steel watch", category_path=["Watches"])])
        embedded.refresh()
        backend, cluster = fake_es(MAX_RETRIES=0, FALLBACK="fallback")
        cluster.down = True
        assert [h.id for h in backend.search_text("towel")] == [1]
        fused = hybrid_search(backend, "watch", {"text": product_doc(2).vectors["text"]})
        assert fused[0].id == 2
    finally:
        reset_backends()


def test_bad_input_never_reaches_the_cluster_as_syntax(fake_es):
    backend, cluster = fake_es()
    with pytest.raises(ValueError, match="has 5 dimensions"):
        backend.search_vector("fused", np.ones(5, np.float32))
    with pytest.raises(ValueError, match="Unknown vector field 'colour'"):
        backend.search_vector("colour", np.ones(8, np.float32))
    with pytest.raises(ValueError, match="finite"):
        backend.search_text("towel", filters=SearchFilters(price_max=float("nan")))
    assert backend.search_text("   ") == []
    assert backend.search_vector("text", np.zeros(8, np.float32)) == []
    backend.search_text("towel " * 500 + 'AND title:"x"')
    backend.search_text("towel", filters=SearchFilters(category="No > Such > Category", brands=("Nobody",)))
    bodies = [r.body for r in cluster.sent("POST", "/_search$")]
    multi_match = bodies[0]["query"]["bool"]["should"][0]["multi_match"]  # no popularity clause around it any more
    assert len(multi_match["query"].split()) == 64  # long queries are cut to 64 terms
    assert bodies[1]["query"]["bool"]["filter"][0] == {"term": {"category_path": "No > Such > Category"}}


# -- the indexing service records rejections on products ----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.django_db
def test_products_index_marks_the_rejected_product_failed_and_indexes_the_rest(fake_es):
    """Real database and real text encoder; only the cluster is the recorded stand-in."""
    from search.embedding.encoding import vector_dims
    from search.services import products_index
    from shop.models import Brand, Category, IndexState, Product

    # given three products, one of which the cluster refuses for a mapping error
    category = Category.objects.create(name="Towels")
    brand = Brand.objects.create(name="Acme")
    products = [Product.objects.create(title=f"Cotton bath towel {i}", brand=brand, category=category, price=100 + i) for i in range(3)]
    backend, cluster = fake_es()
    backend.vector_dims = vector_dims()
    cluster.reject_item(products[1].pk, 400, MAPPER_ERROR)
    # when they are indexed
    report = products_index(product_ids=[p.pk for p in products], backend=backend)
    # then the refused one is failed with the engine's reason, the others are indexed
    assert report.indexed == [products[0].pk, products[2].pk]
    assert set(report.failed) == {products[1].pk}
    states = {p.pk: (p.index_state, p.index_error) for p in Product.objects.all()}
    assert states[products[0].pk] == (IndexState.INDEXED, "")
    assert states[products[1].pk][0] == IndexState.FAILED
    assert "field 'price'" in states[products[1].pk][1]
    backend.refresh()
    assert backend.ids() == {products[0].pk, products[2].pk}


def test_a_first_index_records_the_fusion_space_the_backend_was_built_with(fake_es):
    # given a backend built with the fusion space in service (get_backend passes it; backends import no app code)
    from search.backends.elasticsearch import ElasticsearchSearchBackend
    from tests.backends.conftest import DIMS
    from tests.backends.fake_es import node_class

    space = {"name": "bridge", "version": "bridge-0123", "dim": DIMS["fused"]}
    cluster = FakeCluster()
    backend = ElasticsearchSearchBackend({"URLS": ["http://es.test:9200"], "CLIENT_OPTIONS": {"node_class": node_class(cluster)}}, DIMS, space=space)
    # when it first writes
    backend.add_bulk([product_doc(1)])
    # then the first build holds that space, as a rebuild would record it
    (create,) = cluster.sent("PUT", r"^/products-0")
    assert create.body["mappings"]["_meta"] == {"fusion_space": space}
    assert backend.index_space() == space
