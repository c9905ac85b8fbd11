"""Every request the Elasticsearch backend sends, checked against Elastic's API specification.

The backend runs for real (official client, helpers, serializers) against the recorded fake
cluster of ``fake_es.py`` (a stand-in: no cluster runs here); each request that reaches the
wire is resolved to its endpoint by method and URL and validated by ``es_spec.Spec``.
"""

from __future__ import annotations

import json

import pytest

from search.backends.base import SearchFilters
from search.backends.elasticsearch import mapping as es_mapping
from search.backends.elasticsearch import queries as es_queries
from tests.backends.conftest import DIMS, product_doc, unit
from tests.backends.es_spec import Spec, SpecViolation, check_document

FILTERS = SearchFilters(category="Home Furnishing > Bath Linen", brands=("Acme", "Spaces"), price_min=100.0, price_max=999.0)
BOOSTS = {"title": 3.0, "brand": 2.0, "category": 1.5, "description": 1.0}


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec()


def assert_valid(spec: Spec, request) -> str:
    """Validate one recorded request; returns its endpoint name."""
    endpoint = spec.endpoint_for(request.method, request.path)
    spec.validate(endpoint, request.body, request.params)
    return endpoint


def sent_to(spec: Spec, cluster, endpoint: str) -> list:
    return [r for r in cluster.requests if spec.endpoint_for(r.method, r.path) == endpoint]


# -- the backend's requests, by shape ------------------------------------------------------------------
def test_index_creation_with_mapping_is_valid(spec, fake_es):
    # given a backend on an empty cluster
    backend, cluster = fake_es()
    # when it is first used
    backend.count()
    # then it created the first build with settings, analysis, mapping and both aliases
    (create,) = sent_to(spec, cluster, "indices.create")
    assert_valid(spec, create)
    props = create.body["mappings"]["properties"]
    assert props["fused_vector"] == {
        "type": "dense_vector", "dims": 8, "element_type": "float", "index": True, "similarity": "cosine",
        "index_options": {"type": "int8_hnsw", "m": 16, "ef_construction": 100},
    }
    assert props["image_vector"]["dims"] == 16
    assert "popularity" not in props  # clicks count once, after fusion (search.hybrid.click_prior), on every engine
    assert props["price"] == {"type": "scaled_float", "scaling_factor": 100}
    assert create.body["aliases"] == {"products": {}, "products-write": {"is_write_index": True}}


@pytest.mark.parametrize("quantization", ["none", "int8", "bbq"])
def test_mapping_for_every_quantization_is_valid(spec, quantization):
    body = es_mapping.index_body({"text": 384, "image": 1280, "fused": 384}, es_mapping.IndexOptions(quantization=quantization))
    spec.validate("indices.create", body)
    assert body["mappings"]["properties"]["text_vector"]["index_options"]["type"] == es_mapping.QUANTIZATIONS[quantization]


def test_bulk_actions_and_documents_are_valid(spec, fake_es):
    backend, cluster = fake_es()
    doc = product_doc(7, description="Soft 500 GSM cotton", rating=4.2, merchant="Shop One")
    backend.add_bulk([doc, product_doc(8, title="Steel watch", vectors={"text": unit(1, 8), "fused": unit(2, 8)})])
    backend.delete([8, 404])
    mapping = es_mapping.mappings(DIMS)
    bulks = sent_to(spec, cluster, "bulk")
    assert len(bulks) == 2
    for request in bulks:
        assert_valid(spec, request)
    lines = bulks[0].body
    assert lines[0] == {"index": {"_index": "products-write", "_id": "7"}}
    assert check_document(lines[1], mapping) == []
    assert lines[1]["category_path"] == ["Home Furnishing", "Home Furnishing > Bath Linen", "Home Furnishing > Bath Linen > Towels"]
    assert "image_vector" not in lines[3]  # a product without a photo has no image vector
    assert bulks[1].body == [{"delete": {"_index": "products-write", "_id": "8"}}, {"delete": {"_index": "products-write", "_id": "404"}}]


def test_bm25_search_with_filters_is_valid(spec, fake_es):
    backend, cluster = fake_es()
    backend.search_text('cotton "towel" title:(a OR b*) \\', filters=FILTERS, limit=50)
    (search,) = sent_to(spec, cluster, "search")
    assert_valid(spec, search)
    body = search.body
    matching = body["query"]["bool"]["must"][0]["bool"]["should"][0]["multi_match"]
    assert matching["query"] == 'cotton "towel" title (a OR b*) \\'  # user text only as a match value (colons read as spaces)
    assert matching["fields"] == ["title^3", "brand^2", "category^1.5", "description^1"]
    assert matching["fuzziness"] == "AUTO"
    assert body["query"]["bool"]["filter"] == [
        {"term": {"category_path": "Home Furnishing > Bath Linen"}},
        {"terms": {"brand.raw": ["Acme", "Spaces"]}},
        {"range": {"price": {"gte": 100.0, "lte": 999.0}}},
    ]
    assert "query_string" not in json.dumps(body)


def test_phrase_boost_on_the_title_is_valid_and_only_for_several_words(spec, fake_es):
    from search.backends.elasticsearch import queries as es_queries

    boosts = {**BOOSTS, "title_phrase": 2.0}
    body = es_queries.text_search_body("wine rack", None, 10, boosts)
    spec.validate("search", body)
    should = body["query"]["bool"]["should"]
    assert {"match_phrase": {"title": {"query": "wine rack", "boost": 2.0}}} in should
    assert all("title_phrase" not in f for f in should[0]["multi_match"]["fields"])
    one = es_queries.text_search_body("rack", None, 10, boosts)
    assert "match_phrase" not in json.dumps(one)


def test_did_you_mean_asks_the_term_suggester_with_edits_by_word_length(spec, fake_es):
    backend, cluster = fake_es()
    assert backend.spelling_suggestions(["cotten", "towl", "bedshets", "foo", "a4tech"]) == {}  # the fake suggests nothing
    (search,) = sent_to(spec, cluster, "search")
    assert_valid(spec, search)
    suggest = search.body["suggest"]
    assert [(s["text"], s["term"]["max_edits"]) for s in suggest.values()] == [("cotten", 1), ("towl", 1), ("bedshets", 2)]
    assert suggest["w0"]["term"]["field"] == "spell" and suggest["w0"]["term"]["suggest_mode"] == "missing"


def test_known_words_are_counted_in_one_valid_request(spec, fake_es):
    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1, "Cotton bath towel"), product_doc(2, "Pressure cooker")])
    backend.refresh()
    assert backend.known_words(["towel", "cooker", "towl", "the"]) == {"towel", "cooker", "the"}
    (search,) = [r for r in sent_to(spec, cluster, "search") if "aggs" in (r.body or {})]
    assert_valid(spec, search)


def test_identifiers_are_mapped_indexed_and_looked_up_exactly(spec, fake_es):
    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1, "T STAR UFT-TSW-005-BK-BR Analog Watch", identifiers=("ufttsw005bkbr", "ufttsw005"))])
    backend.search_identifiers(["ufttsw005"], filters=FILTERS, limit=20)
    (create,) = sent_to(spec, cluster, "indices.create")
    props = create.body["mappings"]["properties"]
    assert props["identifiers"] == {"type": "keyword", "ignore_above": 256}
    assert props["spell"] == {"type": "text", "analyzer": "spell_words"} and props["title"]["copy_to"] == ["spell"]
    (bulk,) = sent_to(spec, cluster, "bulk")
    assert_valid(spec, bulk)
    assert bulk.body[1]["identifiers"] == ["ufttsw005bkbr", "ufttsw005"]
    (search,) = sent_to(spec, cluster, "search")
    assert_valid(spec, search)
    assert search.body["query"]["bool"]["filter"][0] == {"terms": {"identifiers": ["ufttsw005"]}}


def test_browse_by_filters_is_valid(spec, fake_es):
    backend, cluster = fake_es()
    backend.search_text(None, filters=SearchFilters(brands=("Acme",)), limit=5000)
    (search,) = sent_to(spec, cluster, "search")
    assert_valid(spec, search)
    assert search.body["sort"][0] == {"rating": {"order": "desc", "missing": "_last"}}


def test_knn_with_filter_inside_is_valid(spec, fake_es):
    backend, cluster = fake_es()
    backend.search_vector("image", unit(3, 16), filters=FILTERS, k=200)
    (search,) = sent_to(spec, cluster, "search")
    assert_valid(spec, search)
    knn = search.body["knn"]
    assert (knn["field"], knn["k"], knn["num_candidates"]) == ("image_vector", 200, 400)
    assert knn["filter"][0] == {"term": {"category_path": "Home Furnishing > Bath Linen"}}
    assert "query" not in search.body and "post_filter" not in search.body  # filtered inside kNN, not after it


def compiled(method: str, weights: dict, vectors: dict, *, filters=FILTERS):
    """A rule over words and ``vectors`` (no kNN floor) compiled by ``search.hybrid.compile`` (window 100)."""
    from search.backends.retrieval import TextRetrieval, VectorRetrieval
    from search.hybrid.compile import compile_rule
    from search.hybrid.retrievers import KNN_NAME
    from search.hybrid.rule import HybridRule

    retrievals = [TextRetrieval("bm25", "cotton towel", filters, 100)]
    retrievals += [VectorRetrieval(KNN_NAME[f], f, v, filters, 100) for f, v in vectors.items()]
    rule = HybridRule(method=method, weights={"bm25": 1.0, **{KNN_NAME[f]: 1.0 for f in vectors}, **weights}, rrf_k=60, window=100)
    return compile_rule(rule, retrievals)


def hybrid_request(spec, fake_es, version: str, method: str, weights: dict):
    backend, cluster = fake_es(version=version)
    vectors = {"text": unit(1, 8), "fused": unit(2, 8), "image": unit(3, 16)}
    backend.search_fused(compiled(method, weights, vectors))
    searches = sent_to(spec, cluster, "search")
    for request in searches:
        assert_valid(spec, request)
    return searches


def test_rrf_retriever_is_valid(spec, fake_es):
    (search,) = hybrid_request(spec, fake_es, "9.1.0", "rrf", {})
    rrf = search.body["retriever"]["rrf"]
    assert (rrf["rank_constant"], rrf["rank_window_size"]) == (60, 100)
    assert [next(iter(r)) for r in rrf["retrievers"]] == ["standard", "knn", "knn", "knn"]
    assert rrf["retrievers"][1]["knn"]["filter"] == rrf["retrievers"][0]["standard"]["filter"]


def test_no_knn_similarity_inside_the_retrievers(spec, fake_es):
    """The kNN floor decides membership after fusion (search.hybrid.floor): a compiled rule never drops kNN hits before it."""
    (search,) = hybrid_request(spec, fake_es, "9.1.0", "rrf", {})
    knns = [r["knn"] for r in search.body["retriever"]["rrf"]["retrievers"] if "knn" in r]
    assert len(knns) == 3 and all("similarity" not in k for k in knns)


def test_weighted_rrf_retriever_is_valid(spec, fake_es):
    (search,) = hybrid_request(spec, fake_es, "9.2.0", "rrf", {"bm25": 1.0, "text_knn": 1.0, "fused_knn": 0.5, "image_knn": 2.0})
    weights = [r["weight"] for r in search.body["retriever"]["rrf"]["retrievers"]]
    assert weights == [1.0, 1.0, 0.5, 2.0]


def test_linear_retriever_is_valid(spec, fake_es):
    (search,) = hybrid_request(spec, fake_es, "9.0.0", "linear", {"bm25": 2.0, "image_knn": 0})
    entries = search.body["retriever"]["linear"]["retrievers"]
    assert [(e["weight"], e["normalizer"]) for e in entries] == [(2.0, "minmax"), (1.0, "minmax"), (1.0, "minmax")]


def test_fallback_query_and_knn_requests_are_valid(spec, fake_es):
    from search.backends.retrieval import TextRetrieval, VectorRetrieval

    backend, cluster = fake_es(version="8.12.2")
    vectors = {"text": unit(1, 8), "fused": unit(2, 8), "image": unit(3, 16)}
    retrievals = [TextRetrieval("bm25", "cotton towel", FILTERS, 100)] + [VectorRetrieval(f"{f}_knn", f, v, FILTERS, 100) for f, v in vectors.items()]
    backend.search_many(retrievals)  # the lists search.hybrid fuses when the cluster cannot
    (msearch,) = sent_to(spec, cluster, "msearch")
    assert_valid(spec, msearch)
    searches = msearch.body[1::2]
    assert len(searches) == 4  # BM25 + three kNN in one round trip, fused by search.hybrid
    assert "query" in searches[0] and all("knn" in s for s in searches[1:])
    assert sent_to(spec, cluster, "search") == []


def test_aggregations_highlight_explain_are_valid(spec, fake_es):
    backend, cluster = fake_es()
    backend.facets("towel", filters=SearchFilters(category="Home (Furnishing) > Bath.Linen"))
    backend.highlights("towel", [1, 2])
    backend.explain("towel", 1)
    for request in cluster.requests:
        assert_valid(spec, request)
    aggs = sent_to(spec, cluster, "search")[0].body["aggs"]
    assert aggs["category"]["terms"]["include"] == r"Home \(Furnishing\) \> Bath\.Linen \> [^>]+"
    assert aggs["price"]["range"]["ranges"][-1] == {"key": "10000-", "from": 10000.0}
    assert sent_to(spec, cluster, "explain")


def test_alias_swap_and_cleanup_requests_are_valid(spec, fake_es):
    backend, cluster = fake_es()
    backend.add_bulk([product_doc(1)])
    with backend.rebuild() as new:
        new.add_bulk([product_doc(1), product_doc(2)])
    with backend.rebuild(keep=0) as new:
        new.add_bulk([product_doc(2)])
    for request in cluster.requests:
        assert_valid(spec, request)
    swaps = sent_to(spec, cluster, "indices.update_aliases")
    assert len(swaps) == 2
    assert sent_to(spec, cluster, "indices.delete")
    assert sent_to(spec, cluster, "indices.put_settings")


def test_every_request_of_a_session_is_valid(spec, fake_es):
    """All endpoints the backend touches in normal use, including ids(), get_vectors() and refresh()."""
    backend, cluster = fake_es(version="9.2.0")
    backend.add_bulk([product_doc(i) for i in range(1, 4)])
    backend.refresh()
    backend.ids()
    backend.get_vectors("image", [1, 2])
    backend.count()
    backend.describe()
    endpoints = {assert_valid(spec, r) for r in cluster.requests}
    assert endpoints >= {
        "info", "indices.exists_alias", "indices.create", "indices.get_mapping", "bulk", "indices.refresh", "search", "count", "indices.get_alias",
    }
    vectors = [r for r in sent_to(spec, cluster, "search") if isinstance(r.body.get("_source"), dict)]
    assert vectors[0].body["_source"] == {"includes": ["image_vector"], "exclude_vectors": False}


# -- the validator catches mistakes ------------------------------------------------------------------------
def violations(spec: Spec, endpoint: str, body) -> list[str]:
    with pytest.raises(SpecViolation) as caught:
        spec.validate(endpoint, body)
    return caught.value.errors


def test_misspelt_knn_key_fails(spec):
    body = es_queries.knn_search_body("text", unit(1, 8), 10, None, candidates_factor=2.0)
    body["knn"]["num_candidate"] = body["knn"].pop("num_candidates")
    assert any(e.startswith("$.knn.num_candidate: unknown key") for e in violations(spec, "search", body))


def test_misplaced_k_inside_query_fails(spec):
    body = {"query": {"match_all": {}, "k": 10}, "size": 10}
    assert any("$.query.k: unknown key" in e for e in violations(spec, "search", body))


def test_misspelt_mapping_parameter_fails(spec):
    body = es_mapping.index_body(DIMS)
    body["mappings"]["properties"]["text_vector"]["similarty"] = body["mappings"]["properties"]["text_vector"].pop("similarity")
    assert any("text_vector.similarty: unknown key" in e for e in violations(spec, "indices.create", body))


def test_wrong_value_types_fail(spec):
    body = {"knn": {"field": "text_vector", "query_vector": [0.1, "x"], "k": "ten", "num_candidates": 20}}
    errors = violations(spec, "search", body)
    assert any(e.startswith("$.knn.k: expected number") for e in errors)
    assert any(e.startswith("$.knn.query_vector[1]") for e in errors)


def test_linear_retriever_without_normalizer_fails(spec):
    body = {"retriever": {"linear": {"retrievers": [{"retriever": {"standard": {"query": {"match_all": {}}}}, "weight": 1.0}]}}}
    assert any("normalizer: required key missing" in e for e in violations(spec, "search", body))


def test_two_variants_in_one_query_container_fail(spec):
    body = {"query": {"match_all": {}, "match_none": {}}}
    assert any("exactly one of its variants" in e for e in violations(spec, "search", body))


def test_misspelt_key_in_a_multi_search_fails(spec):
    body = es_queries.knn_search_body("text", unit(1, 8), 10, None, candidates_factor=2.0)
    body["knn"]["num_candidate"] = body["knn"].pop("num_candidates")
    assert any(e.startswith("$[1].knn.num_candidate: unknown key") for e in violations(spec, "msearch", [{}, body]))
    assert violations(spec, "msearch", [{}]) == ["$: a multi-search body is a non-empty list of (header, body) ndjson line pairs"]


def test_misspelt_bulk_action_and_alias_option_fail(spec):
    assert any("$[0].indx: unknown key" in e for e in violations(spec, "bulk", [{"indx": {"_id": "1"}}, {"title": "x"}]))
    alias = {"actions": [{"add": {"index": "products-1", "alias": "products", "is_write": True}}]}
    assert any("is_write: unknown key" in e for e in violations(spec, "indices.update_aliases", alias))


def test_unknown_mapping_type_and_query_parameter_fail(spec):
    body = {"mappings": {"properties": {"v": {"type": "dense_vectr", "dims": 3}}}}
    assert any("unknown Property variant 'dense_vectr'" in e for e in violations(spec, "indices.create", body))
    assert spec.errors("search", {"size": 1}, {"refresh": "true"}) == ["?refresh: unknown query parameter"]


def test_document_check_catches_unmapped_fields_and_wrong_dims():
    mapping = es_mapping.mappings(DIMS)
    errors = check_document({"title": "x", "colour": "red", "text_vector": [0.1] * 7, "popularity": 0}, mapping)
    assert len(errors) == 3


#: Examples of the specification that disagree with its own types (not our requests; listed so
#: that a new disagreement still fails).
EXAMPLES_AT_ODDS_WITH_THEIR_TYPES = {
    "SearchRequestExample3": "slice.id is a number; the type says string (Id)",
    "BulkRequestExample2": "an update action line carries _source; UpdateOperation has no such property",
    "indicesPutSettingsRequestExample2": "refresh_interval: null to reset it; the type is Duration (not nullable)",
}


@pytest.mark.parametrize("endpoint", ["search", "indices.create", "indices.update_aliases", "bulk", "count", "indices.put_settings", "explain"])
def test_validator_accepts_the_specifications_own_examples(spec, endpoint):
    """No false alarms: Elastic's request examples for the endpoints we use pass the validator."""
    ref = spec.endpoints[endpoint]["request"]
    examples = spec.types[(ref["namespace"], ref["name"])].get("examples") or {}
    checked = 0
    for name, example in examples.items():
        if name in EXAMPLES_AT_ODDS_WITH_THEIR_TYPES:
            continue
        raw = example.get("value", "")
        try:
            body = [json.loads(line) for line in raw.splitlines() if line.strip()] if endpoint == "bulk" else json.loads(raw)
        except json.JSONDecodeError:
            continue  # a few examples are not JSON (console syntax with comments)
        assert spec.errors(endpoint, body) == [], name
        checked += 1
    assert checked >= 1 or not examples
