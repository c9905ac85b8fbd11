"""Photo + words that compose (search.hybrid.compose): the words narrow what the photo finds.

Real rows: the Flipkart sample of ``indexed_catalog`` (real MiniLM and EfficientNet-Lite0
vectors, the embedded engine) and the fashion catalog's own specification values.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from search.backends.base import Hit
from search.hybrid import compose

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fashion_vocabulary() -> dict[str, set[str]]:
    """Every colour, gender and usage value of the real fashion catalog, as composition reads them."""
    from shop.importers import read_catalog

    vocab: dict[str, set[str]] = {}
    for row in read_catalog("fashion", Path(settings.CATALOG_DIR) / "fashion"):
        for facet, values in compose.facet_values(row.specifications).items():
            vocab.setdefault(facet, set()).update(values)
    return vocab


def test_words_are_read_as_the_catalogs_own_facet_values(fashion_vocabulary):
    # given the fashion catalog's values ("navy blue" and "blue" are both colours; "men" and "women" genders)
    assert {"navy blue", "blue"} <= fashion_vocabulary["colour"]
    # when a shopper's words are read
    named, unmatched = compose.read_words("navy blue kurta for women", fashion_vocabulary)
    # then the longest colour wins, "women" is not read as "men", and the rest is reported, not dropped
    assert named == {"colour": "navy blue", "gender": "women"}
    assert unmatched == ["kurta"]


def test_a_facet_with_several_values_matches_each():
    # given Flipkart's multi-valued "Ideal For"
    values = compose.facet_values({"Ideal For": "Baby Girl's, Women", "Color": "Purple"})
    # then each value is its own facet value
    assert values == {"colour": ("purple",), "gender": ("baby girl", "women")}


def test_the_photos_vote_puts_its_category_first_and_the_words_narrow():
    # given photo hits: three dresses for women lead, a red shirt for men and a red dress for women trail
    facets = {
        1: compose.ProductFacets("dresses", {"colour": ("blue",), "gender": ("women",)}),
        2: compose.ProductFacets("dresses", {"colour": ("green",), "gender": ("women",)}),
        3: compose.ProductFacets("dresses", {"colour": ("black",), "gender": ("women",)}),
        4: compose.ProductFacets("shirts", {"colour": ("red",), "gender": ("men",)}),
        5: compose.ProductFacets("dresses", {"colour": ("red",), "gender": ("women",)}),
    }
    hits = [Hit(1, 0.9), Hit(2, 0.85), Hit(3, 0.8), Hit(4, 0.7), Hit(5, 0.4)]
    # when the shopper adds "red"
    ranking = compose.compose("red", hits, facets)
    # then only red products remain, and the red dress (the photo's category) leads the closer red shirt
    assert [r.id for r in ranking.results] == [5, 4]
    assert ranking.voted == ("dresses", "women")
    assert ranking.named == {"colour": "red"}


def test_photo_and_words_narrow_the_storefront_results(db, settings, indexed_catalog):
    # given the indexed Flipkart sample and a shopper's photo of an orange hair towel
    from mlmodels.images import open_image
    from search.embedding import encoding
    from search.selectors import product_search
    from shop.models import Product

    towel = Product.objects.get(external_id__startswith="948699ab")
    photo = encoding.encode_image_query(open_image(towel.primary_image.image.open("rb").read()))
    # when the shopper adds "purple", composed (the default) and fused (the earlier behaviour)
    assert settings.SEARCH_COMPOSE == "facets"
    composed = product_search(text="purple", image=photo)
    settings.SEARCH_COMPOSE = "fused"
    fused = product_search(text="purple", image=photo)
    # then the composed page holds only purple products, the purple bath towel first,
    # and it is narrower than the fused page
    firsts = [p.external_id[:8] for p in composed.products]
    assert firsts[0] == "e1d8c5b6"
    assert all(p.specifications.get("Color", "").lower() == "purple" for p in composed.products)
    assert composed.total < fused.total
    assert composed.products[0].search_explain["facets"]["contribution"] == compose.FACET_BOOST


def test_photo_with_a_word_no_facet_names_keeps_the_word_through_bm25(db, indexed_catalog):
    # given the indexed Flipkart sample and a shopper's photo of a bath towel
    from mlmodels.images import open_image
    from search.embedding import encoding
    from search.selectors import product_search
    from shop.models import Product

    towel = Product.objects.filter(title__icontains="towel", images__isnull=False).order_by("pk").first()
    photo = encoding.encode_image_query(open_image(towel.primary_image.image.open("rb").read()))
    # when the shopper adds "towel" (no facet value: BM25 reads it) with a category filter
    root = towel.category.path.split(" > ")[0]
    from search.backends.base import SearchFilters

    page = product_search(text="towel", image=photo, filters=SearchFilters(category=root))
    # then the towel of the photo comes first, only towels of that branch are listed, and both sides show
    assert page.products[0].pk == towel.pk
    assert all("towel" in p.title.lower() and p.category.path.startswith(root) for p in page.products)
    assert {compose.PHOTO, compose.BM25} <= set(page.products[0].search_explain)


def test_the_fashion_compose_check_set_is_built_from_the_real_catalog():
    # given the real fashion catalog
    from search.evaluation.fashion_compose import load_fashion_compose

    # when the composed check set is built
    ds, extra, rel = load_fashion_compose(Path(settings.CATALOG_DIR) / "fashion")
    # then: 391 photo + word queries, each with >= 3 relevant catalog products, the photos from the training split
    assert len(ds.queries) == 391
    assert rel.shape == (391, len(ds.products)) and rel.sum(axis=1).min() >= 3
    catalog_photos = {p.image_path for p in ds.products}
    assert not any(q.image_path in catalog_photos for q in ds.queries)
    assert {"navy blue", "for women", "casual"} <= {q.text for q in ds.queries}
    assert len(extra["rows"]) == 391
