"""The backend contract against a real Elasticsearch cluster, when ``ELASTICSEARCH_URL`` is set.

Start one with ``docker compose up -d elasticsearch`` and run
``ELASTICSEARCH_URL=http://localhost:9200 pytest tests/backends/test_es_live.py``. Without the
variable every test here is skipped with that reason. Indexes are named ``t<random>-*`` and
deleted after each test. Vectors are indexed unquantised (``hnsw``) because the contract checks
cosine scores to 1e-4, which int8/bbq quantisation only approximates.
"""

from __future__ import annotations

import os

import pytest

from search.backends.base import SearchFilters
from search.backends.retrieval import FusionRequest, TextRetrieval, VectorRetrieval
from tests.backends.conftest import DIMS, es_backend_factory, product_doc

try:
    from tests.backends.contract import BackendContract
except ImportError:  # pragma: no cover - depends on the merge order
    BackendContract = None

URL = os.environ.get("ELASTICSEARCH_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="ELASTICSEARCH_URL is not set: no Elasticsearch cluster to test against (docker compose up -d elasticsearch)")


@pytest.fixture
def live(request):
    backend = es_backend_factory(URL, DIMS, request)()
    backend.add_bulk([product_doc(1), product_doc(2, "Steel wrist watch", brand="Titan", category_path=["Watches"], price=2999.0)])
    backend.refresh()
    return backend


def test_cluster_version_and_description(live):
    assert live.features.version >= (8, 12, 0)
    assert live.describe()["documents"] == 2


@pytest.mark.parametrize("method", ["rrf", "linear"])
def test_hybrid_on_the_cluster_finds_the_watch(live, method):
    request = FusionRequest(
        retrievals=(TextRetrieval("bm25", "watch"), VectorRetrieval("text_knn", "text", product_doc(2).vectors["text"])),
        method=method, weights={"bm25": 1.0, "text_knn": 0.5}, window=2,
    )
    if method not in live.fusion_support().methods or (method == "rrf" and not live.fusion_support().weighted_rrf):
        pytest.skip(f"this cluster ({live.features.version}) does not run a weighted {method} retriever")
    fused = live.search_fused(request)
    assert fused[0].id == 2


def test_facets_highlight_and_explain(live):
    facets = live.facets(None, filters=SearchFilters(category="Home Furnishing"))
    assert facets["category"] == [("Home Furnishing > Bath Linen", 1)]
    assert "<mark>towel</mark>" in live.highlights("towel", [1])[1]["title"][0].lower()
    assert live.explain("towel", 1)["value"] > 0


if BackendContract is not None:

    class TestElasticsearchContractLive(BackendContract):
        """The shared backend contract on a real cluster."""

        @pytest.fixture
        def make_backend(self, request):
            return es_backend_factory(URL, self.dims, request)
