"""Shoppers' photo references and the kNN floor on an engine that fuses BM25 and kNN server-side (Elasticsearch).

No Elasticsearch cluster runs here: the engine is the real embedded index, declared able to fuse
on its side (``supports_server_fusion``), with a stand-in ``search_fused`` that records what it
is asked, as Elasticsearch's retrievers would be. ``search.hybrid.compile`` decides when such an
engine fuses: never when the query has lists the engine does not hold (the references live in
the database), nor when the kNN floor is on (it decides membership after fusing the full lists).
"""

from __future__ import annotations

import numpy as np
from django.utils import timezone

from search.backends import get_backend
from search.backends.base import SearchFilters
from search.backends.embedded import EmbeddedSearchBackend
from search.backends.retrieval import FusionRequest, FusionSupport, VectorRetrieval
from search.clicks.models import PhotoReference
from search.clicks.selectors import photo_refs_reset
from search.selectors import product_search
from shop.models import Product


class ServerSideFusion(EmbeddedSearchBackend):
    """The embedded engine, declared able to fuse ``rrf`` and ``linear`` on its side, as Elasticsearch 9.2 is."""

    supports_server_fusion = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests: list[FusionRequest] = []

    def fusion_support(self) -> FusionSupport:
        return FusionSupport(methods=frozenset({"rrf", "linear"}), weighted_rrf=True)

    def search_fused(self, request: FusionRequest):
        self.requests.append(request)
        return []


def server_side(backend: EmbeddedSearchBackend) -> ServerSideFusion:
    """A second client of ``backend``'s index that fuses server-side."""
    return ServerSideFusion(backend.params, backend.vector_dims, space=backend.initial_space)


def test_photo_references_count_where_the_engine_fuses_server_side(db, settings, indexed_catalog):
    # given an engine that fuses server-side, no kNN floor, and a shopper's photo of a catalog product
    from mlmodels.images import open_image
    from mlmodels.registry import get_image_encoder
    from tests.conftest import flipkart_dir

    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.0, "image": 0.0, "fused": 0.0}
    engine = server_side(get_backend())
    shown, clicked = Product.objects.filter(pk__in=indexed_catalog.product_ids, images__isnull=False).order_by("pk")[:2]
    photo = get_image_encoder().encode([open_image(flipkart_dir() / "images" / shown.images.get(is_primary=True).source_name).image])
    photo_refs_reset()

    # when no shopper has clicked after such a photo, the engine fuses
    product_search(image=photo, backend=engine)
    assert len(engine.requests) == 1

    # when shoppers' clicks made that photo a reference of another product
    vec = photo.features[0] / np.linalg.norm(photo.features[0])
    PhotoReference.objects.create(product=clicked, vector=vec.astype(np.float32).tobytes(), created=timezone.now())
    photo_refs_reset()
    page = product_search(image=photo, backend=engine)

    # then the storefront fuses, the reference counts, and the engine is not asked to fuse
    assert len(engine.requests) == 1
    by_id = {p.pk: p for p in page.products}
    assert clicked.pk in by_id and "photo_refs_knn" in by_id[clicked.pk].search_explain
    assert page.products[0].pk == clicked.pk  # the shoppers' choice for this photo leads (reference weight 8)
    photo_refs_reset()


def test_an_engine_that_fuses_server_side_ranks_a_floored_query_like_the_embedded_engine(db, settings, indexed_catalog):
    # given an engine that fuses server-side, and a floor of half the best cosine
    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.5, "image": 0.5, "fused": 0.5}
    plain = get_backend()
    engine = server_side(plain)
    home = "Home Furnishing"
    # when a shopper searches, filtered to a category
    page = product_search(text="cotton bath towel", filters=SearchFilters(category=home), backend=engine)
    # then the engine is not asked to fuse: the floor, relative to the unfiltered best cosine, decides membership after fusion
    assert engine.requests == []
    reference = product_search(text="cotton bath towel", filters=SearchFilters(category=home), backend=plain)
    assert page.total and [p.pk for p in page.products] == [p.pk for p in reference.products] and page.total == reference.total

    # when the floor and the match cut-off are off
    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.0, "image": 0.0, "fused": 0.0}
    settings.SEARCH_MATCH_MIN_COVERAGE = 0.0
    settings.SEARCH_EXACT_MATCH_BOOST, settings.SEARCH_EXACT_ENOUGH, settings.SEARCH_KNN_ONLY_MIN_COSINE = 0.0, 0, {}  # read coverage too
    product_search(text="cotton bath towel", filters=SearchFilters(category=home), backend=engine)
    # then the engine is asked to fuse the three lists, each filtered inside
    (request,) = engine.requests
    assert [r.name for r in request.retrievals] == ["bm25", "text_knn", "fused_knn"]
    assert all(r.filters == SearchFilters(category=home) for r in request.retrievals)
    assert isinstance(request.retrievals[1], VectorRetrieval) and request.window == settings.SEARCH_CANDIDATES

