"""Test-time views of photos (mlmodels.image_views, IMAGE_QUERY_VIEWS / IMAGE_GALLERY_VIEWS) and augmented training views.

Real EfficientNet-Lite0 on real Grocery photos (a catalog packshot and shop-floor snaps) from ``CATALOG_DIR``.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from mlmodels.image_views import VIEW_SETS, encode_views, photo_view, random_view
from mlmodels.images import open_image
from search.evaluation.datasets import load_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def grocery():
    ds = load_dataset("grocery", Path(settings.CATALOG_DIR) / "grocery")
    return ds


@pytest.fixture(scope="module")
def encoder():
    from search.embedding.encoders import image_encoder

    return image_encoder()


def test_a_view_set_is_the_normalised_mean_of_its_views(grocery, encoder):
    # given a real catalog photo
    photo = open_image(grocery.products[0].image_path.read_bytes()).image
    # when it is encoded with the six gallery views, and each view alone
    together = encode_views(encoder, [photo], "crops6")
    alone = encoder.encode([photo_view(photo, v) for v in VIEW_SETS["crops6"]])
    # then the set's vector is the unit-length mean of the views' vectors
    mean = alone.features.mean(axis=0)
    np.testing.assert_allclose(together.features[0], mean / np.linalg.norm(mean), atol=1e-5)
    assert together.logits.shape == (1, 1000)
    # and "center" is the encoder's own preprocessing, unchanged
    np.testing.assert_array_equal(encode_views(encoder, [photo], "center").features, encoder.encode([photo]).features)


def test_query_views_bring_shop_floor_photos_closer_to_their_catalog_photo(grocery, encoder):
    # given 40 shop-floor photos and the 81 catalog photos
    queries = [open_image(q.image_path.read_bytes()).image for q in grocery.queries[:40]]
    own = [next(iter(grocery.qrels[q.id])) - 1 for q in grocery.queries[:40]]
    catalog = [open_image(p.image_path.read_bytes()).image for p in grocery.products]
    plain_q, plain_c = encoder.encode(queries).features, encoder.encode(catalog).features
    views_q, views_c = encode_views(encoder, queries, "crop80_2").features, encode_views(encoder, catalog, "crops6").features
    # when each photo's own product is ranked among the 81
    def mean_rank(q, c):
        scores = q @ c.T
        return float(np.mean([(scores[i] > scores[i, j]).sum() + 1 for i, j in enumerate(own)]))
    # then the views rank the right product higher on average (Grocery val: top-1 0.361 -> 0.436 over 296 photos)
    assert mean_rank(views_q, views_c) < mean_rank(plain_q, plain_c)


def test_changing_the_gallery_views_reencodes_the_photo_at_the_next_reindex(db, settings, tmp_path):
    # given a product with a real photo, indexed with the plain view
    from search.backends import reset_backends
    from search.models import ProductEmbedding
    from search.services import products_embed
    from shop.models import Product
    from shop.services import product_image_add
    from tests.factories import ProductFactory

    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": tmp_path / "index"}}
    settings.MEDIA_ROOT = tmp_path / "media"
    reset_backends()
    settings.IMAGE_GALLERY_VIEWS = "center"
    product = ProductFactory(title="Oatly Oat Milk")
    ds = load_dataset("grocery", Path(settings.CATALOG_DIR) / "grocery")
    product_image_add(product=product, data=ds.products[0].image_path.read_bytes(), source_name="oat.jpg")
    product = Product.objects.get(pk=product.pk)
    products_embed([product], force=True)
    plain = ProductEmbedding.objects.get(product=product)
    # when the gallery views change
    settings.IMAGE_GALLERY_VIEWS = "crops6"
    products_embed([product])
    views = ProductEmbedding.objects.get(product=product)
    # then the photo was encoded again: another hash, another (unit) vector
    assert views.image_hash != plain.image_hash
    v, p = ProductEmbedding.unpack(views.image_features), ProductEmbedding.unpack(plain.image_features)
    assert 0.8 < float(v @ p) < 0.999
    assert abs(float(np.linalg.norm(v)) - 1) < 1e-5
    reset_backends()


def test_an_augmented_view_is_seeded_and_changes_the_photo():
    # given a real photo
    ds = load_dataset("grocery", Path(settings.CATALOG_DIR) / "grocery")
    photo = open_image(ds.products[3].image_path.read_bytes()).image
    # then the same seed gives the same 224 px view, another seed another one
    a, b, c = (random_view(photo, random.Random(s)) for s in (7, 7, 8))
    assert a.size == (224, 224)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_training_on_augmented_views_gives_another_head(encoder):
    # given 60 real (text, photo) pairs and one augmented view of each photo
    from mlmodels import head as fh
    from search.embedding.encoders import text_encoder

    ds = load_dataset("grocery", Path(settings.CATALOG_DIR) / "grocery")
    photos = [open_image(p.image_path.read_bytes()).image for p in ds.products[:60]]
    feats = encoder.encode(photos).features
    views = encoder.encode([random_view(p, random.Random(i)) for i, p in enumerate(photos)]).features
    text = text_encoder().encode_document([p.encoder_text for p in ds.products[:60]])
    # when a head trains with and without the views (same seed)
    plain = fh.train_fusion_head(text, feats, epochs=3, seed=0, device="cpu")
    again = fh.train_fusion_head(text, feats, epochs=3, seed=0, device="cpu")
    augmented = fh.train_fusion_head(text, feats, epochs=3, seed=0, device="cpu", image_views=views)
    # then the default is unchanged and the views change what is learnt
    np.testing.assert_array_equal(plain.text(text), again.text(text))
    assert not np.allclose(plain.text(text), augmented.text(text))
    with pytest.raises(ValueError, match="image_views"):
        fh.train_fusion_head(text, feats, epochs=1, device="cpu", image_views=views[:10])
