"""One hybrid rule on every engine: the same queries give the same ids in the same order.

The embedded engine (tantivy + usearch; ``search.hybrid`` fetches its lists and fuses them) is the
reference. The Elasticsearch backend runs the same queries through the same pipeline
(``search.hybrid.pipeline.ranked_matches``):

* on the recorded fake cluster (``fake_es.py``) answering as Elasticsearch documents it
  (``es_semantics.py``: exact kNN, the ``rrf`` and ``linear`` retrievers; BM25 words scored by
  the embedded engine, so this checks the requests and the fusion, not Lucene). With the
  storefront's kNN floor, which decides membership after fusing the full lists, ``search.hybrid``
  fetches every list in one ``_msearch`` and fuses them itself; without a floor a 9.2 cluster runs
  the rule itself (one ``linear`` or weighted ``rrf`` retriever), while an 8.12 cluster, which has
  no retrievers, still answers one ``_msearch``. Every request body is validated against Elastic's
  API specification.
* on noida-db over HTTP (an emulator of the Elasticsearch 8 API with its own BM25; see the
  ``noida_url`` fixture): the lists through ``_msearch``, and, for a text query without a floor
  whose weights are equal, the ``rrf`` retriever (``HYBRID=retrievers``). Its BM25 scores differ
  from tantivy's, so the words asked match one or two products in the same BM25 order on both (a
  title before a description), which min-max turns into 1.0 and 0.0 on both.

Queries: words, a photo, a photo with words, and filtered ones, under linear and RRF fusion,
with the storefront's weights (``SEARCH_WEIGHTS``), with and without its kNN floor
(``SEARCH_KNN_MIN_RATIO``). Results whose fused scores are exactly equal (RRF gives equal scores
to, say, the second of one list and the second of another) may come in either order:
``search.hybrid`` breaks such ties by the best single rank, then the id; Elasticsearch by Lucene's
internal document number, which the application does not choose. Every other position must match.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import override_settings

from search.backends.base import BaseSearchBackend, FusedResult, SearchFilters
from search.backends.elasticsearch import ElasticsearchSearchBackend
from search.backends.embedded import EmbeddedSearchBackend
from search.embedding.encoding import QueryVectors
from search.hybrid.pipeline import hybrid_query, ranked_matches
from search.hybrid.retrievers import PHOTO_REFS_KNN
from tests.backends.conftest import es_backend_factory
from tests.backends.contract import HOME, make_catalog
from tests.backends.es_semantics import ElasticsearchSemantics
from tests.backends.es_spec import Spec
from tests.backends.fake_es import FakeCluster, node_class
from tests.factories import TEST_DIMS, unit_vector

#: noida-db lacks two of the words analyzer's token filters (see the fixture).
pytestmark = pytest.mark.usefixtures("emulator_analysis")


@dataclass(frozen=True)
class Case:
    words: str
    photo: bool
    filters: SearchFilters = SearchFilters()

    @property
    def vectors(self) -> QueryVectors:
        """Query vectors drawn once per case: text when there are words, image for a photo, fused always."""
        seed = f"{self.words}|{self.photo}"
        return QueryVectors(
            text=unit_vector(TEST_DIMS["text"], seed, "text") if self.words else None,
            image=unit_vector(TEST_DIMS["image"], seed, "image") if self.photo else None,
            fused=unit_vector(TEST_DIMS["fused"], seed, "fused"),
            space=None,
        )


CASES = {
    "words": Case("umbrella", photo=False),
    "photo": Case("", photo=True),
    "photo and words": Case("curtain", photo=True),
    "filtered words": Case("umbrella", photo=False, filters=SearchFilters(category=HOME)),
    "filtered photo": Case("", photo=True, filters=SearchFilters(price_min=800, price_max=2000)),
}
METHODS = ("linear", "rrf")
#: ``SEARCH_KNN_MIN_RATIO``: a floor of half the best cosine, and none.
FLOORS = {"floor": {"text": 0.5, "image": 0.5, "fused": 0.5}, "no floor": {"text": 0.0, "image": 0.0, "fused": 0.0}}
#: ``SEARCH_MATCH_MIN_COVERAGE`` with each: the match cut-off is membership too, so "no floor" has none.
CUTOFF = {"floor": 1.0, "no floor": 0.0}
#: The exact-match boost and the kNN-only gates read BM25's term coverage like the cut-off, so "no floor" has none either.
#: The absolute floors of kNN-only hits are set for the real encoders' cosines; these random vectors are far below them.
EXACT = {
    # The boost reorders, so it is off in both for the floor's membership-only check; it has its own agreement test below.
    "floor": {"SEARCH_EXACT_MATCH_BOOST": 0.0, "SEARCH_EXACT_ENOUGH": 24, "SEARCH_KNN_ONLY_MIN_COSINE": {}},
    "no floor": {"SEARCH_EXACT_MATCH_BOOST": 0.0, "SEARCH_EXACT_ENOUGH": 0, "SEARCH_KNN_ONLY_MIN_COSINE": {}},
}


def exact_settings(settings, floor: str) -> None:
    for name, value in EXACT[floor].items():
        setattr(settings, name, value)
ALL = [(name, method, floor) for name in CASES for method in METHODS for floor in FLOORS]


def ranking(backend: BaseSearchBackend, case: Case, method: str) -> list[int]:
    """The ids ``case`` matches on ``backend``, best first, as the storefront ranks them (without clicks)."""
    return [r.id for r in fused_matches(backend, case, method)]


def fused_matches(backend: BaseSearchBackend, case: Case, method: str) -> list[FusedResult]:
    # shoppers' photo references live in the database, not in the engines: left out here
    query = hybrid_query(backend=backend, text=case.words, vectors=case.vectors, photo=case.photo, filters=case.filters,
                         weights={PHOTO_REFS_KNN: 0.0}, method=method)
    return ranked_matches(backend=backend, query=query, filters=case.filters, method=method)


def in_tie_groups(ids: list[int], reference: list[FusedResult]) -> list[set[int]]:
    """``ids`` cut where ``reference`` changes score: equal when ``ids`` is ``reference``'s order up to exact ties."""
    groups: list[list[int]] = []
    for i, r in enumerate(reference):
        if i and abs(r.score - reference[i - 1].score) <= 1e-9 * max(1.0, abs(r.score)):
            groups[-1].append(i)
        else:
            groups.append([i])
    if len(ids) != len(reference):
        return [set(ids)]
    return [{ids[i] for i in g} for g in groups]


def assert_same_ranking(ids: list[int], reference: list[FusedResult]) -> None:
    assert in_tie_groups(ids, reference) == in_tie_groups([r.id for r in reference], reference), (ids, [r.id for r in reference])


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> EmbeddedSearchBackend:
    backend = EmbeddedSearchBackend({"INDEX_DIR": tmp_path_factory.mktemp("agreement"), "INDEX": "products"}, TEST_DIMS)
    backend.add_bulk(make_catalog())
    backend.refresh()
    return backend


@pytest.fixture(scope="module")
def expected(embedded) -> dict[tuple[str, str, str], list[FusedResult]]:
    out = {}
    for name, method, floor in ALL:
        with override_settings(SEARCH_KNN_MIN_RATIO=FLOORS[floor], SEARCH_MATCH_MIN_COVERAGE=CUTOFF[floor], **EXACT[floor]):
            out[(name, method, floor)] = fused_matches(embedded, CASES[name], method)
    return out


def fake_cluster_backend(version: str, embedded: EmbeddedSearchBackend) -> tuple[ElasticsearchSearchBackend, FakeCluster]:
    cluster = FakeCluster(version=version)
    cluster.search_hits = ElasticsearchSemantics(cluster, bm25=embedded)
    backend = ElasticsearchSearchBackend(
        {"URLS": ["http://es.test:9200"], "INDEX": "products", "QUANTIZATION": "none", "CLIENT_OPTIONS": {"node_class": node_class(cluster)}},
        TEST_DIMS,
    )
    backend.add_bulk(make_catalog())
    backend.refresh()
    return backend, cluster


def test_the_reference_rankings_fuse_several_lists_and_the_floor_leaves_far_knn_hits_out(expected, embedded):
    ids = {key: [r.id for r in results] for key, results in expected.items()}
    for key, found in ids.items():
        assert len(found) >= 2, key
    assert len(ids[("photo", "linear", "floor")]) < len(ids[("photo", "linear", "no floor")]) == len(embedded.ids())
    assert set(ids[("filtered words", "linear", "floor")]) <= {1, 2, 3, 7, 10}
    assert ids[("words", "linear", "floor")] != ids[("words", "rrf", "floor")]
    # the floor only decides membership: the products it keeps are in the order they had without it
    for name in CASES:
        kept = set(ids[(name, "linear", "floor")])
        assert ids[(name, "linear", "floor")] == [i for i in ids[(name, "linear", "no floor")] if i in kept], name


def validate_all(requests) -> None:
    spec = Spec()
    for request in requests:
        spec.validate(spec.endpoint_for(request.method, request.path), request.body, request.params)


@pytest.mark.parametrize(("name", "method", "floor"), ALL)
def test_a_cluster_with_retrievers_ranks_like_the_embedded_engine(expected, embedded, settings, name, method, floor):
    # given Elasticsearch 9.2 (rrf with weights, linear with minmax)
    settings.SEARCH_KNN_MIN_RATIO = FLOORS[floor]
    settings.SEARCH_MATCH_MIN_COVERAGE = CUTOFF[floor]
    exact_settings(settings, floor)
    backend, cluster = fake_cluster_backend("9.2.0", embedded)
    start = len(cluster.requests)
    # when
    ids = ranking(backend, CASES[name], method)
    # then the same ids in the same order
    assert_same_ranking(ids, expected[(name, method, floor)])
    sent = cluster.requests[start:]
    fused = [r for r in sent if "retriever" in (r.body or {})]
    if floor == "no floor":  # fused by the cluster, in one request
        assert len(fused) == 1 and method in fused[0].body["retriever"]
    else:  # the floor decides membership after fusing: every list in one _msearch (two with the best cosines first)
        assert fused == [] and 1 <= len([r for r in sent if r.path.endswith("/_msearch")]) <= 2
    validate_all(sent)


@pytest.mark.parametrize(("name", "method", "floor"), ALL)
def test_a_cluster_without_retrievers_answers_every_list_in_one_round_trip_and_ranks_alike(expected, embedded, settings, name, method, floor):
    # given Elasticsearch 8.12 (no rrf or linear retriever)
    settings.SEARCH_KNN_MIN_RATIO = FLOORS[floor]
    settings.SEARCH_MATCH_MIN_COVERAGE = CUTOFF[floor]
    exact_settings(settings, floor)
    backend, cluster = fake_cluster_backend("8.12.0", embedded)
    start = len(cluster.requests)
    # when
    ids = ranking(backend, CASES[name], method)
    # then the same ids in the same order; the lists came in one _msearch (two with the floor's best cosines first)
    assert_same_ranking(ids, expected[(name, method, floor)])
    sent = cluster.requests[start:]
    assert not any(r.path.endswith("/_search") for r in sent)
    assert 1 <= len([r for r in sent if r.path.endswith("/_msearch")]) <= 2
    validate_all(sent)


@pytest.mark.parametrize("method", METHODS)
def test_exact_matches_rank_first_alike_on_a_cluster(embedded, settings, method):
    # given the floor, the cut-off and the exact-match boost (never compiled: the lists come in one _msearch)
    settings.SEARCH_KNN_MIN_RATIO = FLOORS["floor"]
    settings.SEARCH_MATCH_MIN_COVERAGE = CUTOFF["floor"]
    exact_settings(settings, "floor")
    settings.SEARCH_EXACT_MATCH_BOOST = 1.0
    reference = fused_matches(embedded, CASES["words"], method)
    backend, cluster = fake_cluster_backend("9.2.0", embedded)
    # when
    ids = ranking(backend, CASES["words"], method)
    # then the products holding the word lead on both, in the same order
    assert any(p.retriever == "exact" for p in reference[0].parts)
    assert_same_ranking(ids, reference)
    assert not [r for r in cluster.requests if "retriever" in (r.body or {})]


@pytest.fixture
def noida_catalog(noida_url, request):
    def make(**params):
        backend = es_backend_factory(noida_url, TEST_DIMS, request, **params)()
        backend.add_bulk(make_catalog())
        backend.refresh()
        return backend

    return make


@pytest.mark.parametrize(("name", "method", "floor"), ALL)
def test_the_emulator_ranks_like_the_embedded_engine(expected, noida_catalog, settings, name, method, floor):
    # given noida-db (Elasticsearch 8.15 API: no linear retriever; lists through _msearch)
    settings.SEARCH_KNN_MIN_RATIO = FLOORS[floor]
    settings.SEARCH_MATCH_MIN_COVERAGE = CUTOFF[floor]
    exact_settings(settings, floor)
    backend = noida_catalog()
    # then
    assert_same_ranking(ranking(backend, CASES[name], method), expected[(name, method, floor)])


def test_the_emulators_rrf_retriever_ranks_like_the_embedded_engine(embedded, noida_catalog, settings, monkeypatch):
    # given noida-db with the rrf retriever forced, and a text query without a floor whose lists all weigh 1.0
    # (the emulator's rrf retriever takes no weights)
    settings.SEARCH_KNN_MIN_RATIO = FLOORS["no floor"]
    settings.SEARCH_MATCH_MIN_COVERAGE = CUTOFF["no floor"]
    exact_settings(settings, "no floor")
    settings.SEARCH_WEIGHTS = {**settings.SEARCH_WEIGHTS, "bm25": 1.0, "text_knn": 1.0, "fused_knn": 1.0}  # the default weighs BM25 1.33
    reference = fused_matches(embedded, CASES["words"], "rrf")
    backend = noida_catalog(HYBRID="retrievers")
    calls = []
    run = backend.search_fused
    monkeypatch.setattr(backend, "search_fused", lambda request: calls.append(request) or run(request))
    # when
    ids = ranking(backend, CASES["words"], "rrf")
    # then it was fused by the emulator, and ranks alike
    assert len(calls) == 1 and set(calls[0].weights.values()) == {1.0} and len(calls[0].retrievals) == 3
    assert_same_ranking(ids, reference)
