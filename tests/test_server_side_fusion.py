"""Shoppers' photo references and the kNN floor on an engine that fuses BM25 and kNN server-side (Elasticsearch).

No Elasticsearch cluster runs here: the engine is the real embedded index with a stand-in
``search_hybrid`` that counts its calls, as Elasticsearch's retrievers would answer them. The
references live in the database, not in the engine, so a photo query that has some must be fused
by the storefront (``search.hybrid.fusion.blend``), not by the engine.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone

from search.backends import get_backend
from search.clicks.models import PhotoReference
from search.clicks.selectors import photo_refs_reset
from search.selectors import product_search
from shop.models import Product


class ServerSideFusion:
    """The embedded engine, plus a ``search_hybrid`` as Elasticsearch's backend has one."""

    def __init__(self, inner):
        self.inner, self.hybrid_calls, self.last_kwargs = inner, 0, {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def search_hybrid(self, text, vectors, **kwargs):
        self.hybrid_calls += 1
        self.last_kwargs = kwargs
        return []


def test_photo_references_count_where_the_engine_fuses_server_side(db, indexed_catalog):
    # given an engine that fuses server-side, and a shopper's photo of a catalog product
    from mlmodels.images import open_image
    from mlmodels.registry import get_image_encoder
    from tests.conftest import flipkart_dir

    engine = ServerSideFusion(get_backend())
    shown, clicked = Product.objects.filter(pk__in=indexed_catalog.product_ids, images__isnull=False).order_by("pk")[:2]
    photo = get_image_encoder().encode([open_image(flipkart_dir() / "images" / shown.images.get(is_primary=True).source_name).image])
    photo_refs_reset()

    # when no shopper has clicked after such a photo, the engine fuses
    product_search(image=photo, backend=engine)
    assert engine.hybrid_calls == 1

    # when shoppers' clicks made that photo a reference of another product
    vec = photo.features[0] / np.linalg.norm(photo.features[0])
    PhotoReference.objects.create(product=clicked, vector=vec.astype(np.float32).tobytes(), created=timezone.now())
    photo_refs_reset()
    page = product_search(image=photo, backend=engine)

    # then the storefront fuses, the reference counts, and the engine is not asked to fuse
    assert engine.hybrid_calls == 1
    by_id = {p.pk: p for p in page.products}
    assert clicked.pk in by_id and "photo_refs_knn" in by_id[clicked.pk].search_explain
    assert page.products[0].pk == clicked.pk  # the shoppers' choice for this photo leads (reference weight 8)
    photo_refs_reset()


def test_an_engine_that_fuses_server_side_gets_the_knn_floor_of_the_whole_catalog(db, settings, indexed_catalog):
    # given an engine that fuses server-side, and a floor of half the best cosine
    from search.backends.base import SearchFilters
    from search.embedding import encoding

    settings.SEARCH_KNN_MIN_RATIO = {"text": 0.5, "image": 0.5, "fused": 0.5}
    engine = ServerSideFusion(get_backend())
    vectors = encoding.query_vectors("cotton bath towel", None, backend=engine)
    best = {f: engine.search_vector(f, getattr(vectors, f), k=1)[0].score for f in ("text", "fused")}
    # when a shopper searches, filtered to a category
    product_search(text="cotton bath towel", filters=SearchFilters(category="Home Furnishing"), backend=engine)
    # then the engine is asked for kNN hits within half of the unfiltered best cosine of each field
    floors = engine.last_kwargs["min_similarity"]
    assert floors == pytest.approx({f: 0.5 * b for f, b in best.items()})
