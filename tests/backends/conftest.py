"""Fixtures for the search backend tests: an Elasticsearch backend over the recorded fake cluster."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from search.backends.base import SearchDocument
from tests.backends.fake_es import FakeCluster, node_class

#: Small vector dimensions keep recorded bodies short; the mapping takes them from the backend.
DIMS = {"text": 8, "image": 16, "fused": 8}


def unit(seed: int, dim: int) -> np.ndarray:
    """A deterministic L2-normalised float32 vector ``(dim,)``."""
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def product_doc(pid: int, title: str = "Cotton bath towel", **fields) -> SearchDocument:
    """A product document with all three vectors."""
    fields.setdefault("brand", "Acme")
    fields.setdefault("category_path", ["Home Furnishing", "Bath Linen", "Towels"])
    fields.setdefault("price", 499.0)
    fields.setdefault("vectors", {role: unit(pid * 10 + i, d) for i, (role, d) in enumerate(DIMS.items())})
    return SearchDocument(id=pid, title=title, **fields)


@pytest.fixture
def fake_es() -> Callable[..., tuple]:
    """``make(version="9.1.0", **params) -> (backend, cluster)``: an Elasticsearch backend whose
    client talks to a :class:`FakeCluster` (a stand-in for a cluster: no server runs here)."""
    from search.backends.elasticsearch import ElasticsearchSearchBackend

    def make(version: str = "9.1.0", cluster: FakeCluster | None = None, **params):
        cluster = cluster or FakeCluster(version=version)
        options = {"URLS": ["http://es.test:9200"], "INDEX": "products", "RETRY_BACKOFF_S": 0.001, "BULK_BACKOFF_S": 0.001,
                   "CLIENT_OPTIONS": {"node_class": node_class(cluster)}, **params}
        return ElasticsearchSearchBackend(options, DIMS), cluster

    return make
