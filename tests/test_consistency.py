"""Photo-text consistency (search.consistency): a deliberately wrong photo on real rows is flagged.

Real rows: fashion products from ``CATALOG_DIR`` with their real MiniLM title vectors and
EfficientNet-Lite0 photo features (read from the evaluation cache, ``manage.py evaluate``'s
encoder outputs, or encoded on a miss); a real fusion head trained on them.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command

from mlmodels import head as fh
from search.evaluation.datasets import load_fashion

pytestmark = pytest.mark.slow

#: Catalog size of the test, and the products given another product's photo (of another article type).
N_PRODUCTS = 200
SWAPPED = (3, 50, 120, 177)
#: Training pairs of the test's head (of fashion's 6,137).
TRAIN_PAIRS = 2500


@pytest.fixture(scope="module")
def fashion_pairs():
    """Titles, title vectors, photo features and article types of fashion's training pairs; a head trained on them."""
    from search.evaluation import encoders

    ds = load_fashion(Path(settings.CATALOG_DIR) / "fashion")
    pairs = ds.training
    feats, bad = encoders.image_features(pairs.image_paths, tag="fashion-train")
    text = encoders.text_vectors(pairs.texts, kind="document", tag="fashion-train")
    keep = np.array([i for i in range(len(pairs.texts)) if i not in bad])[:TRAIN_PAIRS]  # a head in about a minute of CPU
    head = fh.train_fusion_head(text[keep], feats.features[keep], group_ids=np.asarray(pairs.groups)[keep], seed=0, device="cpu")
    types = {}
    from shop.importers import read_catalog

    for row in read_catalog("fashion", Path(settings.CATALOG_DIR) / "fashion"):
        types[row.external_id] = row.specifications.get("articleType", "")
    kinds = [types.get(p.stem, "") for p in pairs.image_paths]
    return {"titles": pairs.texts, "text": text, "features": feats.features, "logits": feats.logits, "keep": keep, "types": kinds, "head": head}


@pytest.fixture
def catalog(db, settings, fashion_pairs):
    """``N_PRODUCTS`` rows (one per title group, spread over article types), their embeddings stored in the head's
    space; the products in ``SWAPPED`` carry the photo of a product of another article type."""
    from search.models import ProductEmbedding
    from shop.models import Product
    from shop.signals import indexing_deferred

    settings.CONSISTENCY_FLAG_QUANTILE = 0.03
    settings.CONSISTENCY_MIN_PRODUCTS = 100
    rows, per_type = [], defaultdict(int)
    for i in fashion_pairs["keep"]:
        if per_type[fashion_pairs["types"][i]] < 4:
            per_type[fashion_pairs["types"][i]] += 1
            rows.append(int(i))
        if len(rows) == N_PRODUCTS:
            break
    photo_of = {r: r for r in rows}
    for k in SWAPPED:
        other = next(j for j in reversed(rows) if fashion_pairs["types"][j] != fashion_pairs["types"][rows[k]])
        photo_of[rows[k]] = other
    head, pack = fashion_pairs["head"], ProductEmbedding.pack
    with indexing_deferred():
        products = Product.objects.bulk_create([Product(external_id=f"f{r}", title=fashion_pairs["titles"][r]) for r in rows])
    ProductEmbedding.objects.bulk_create([
        ProductEmbedding(product=p, text_vector=pack(fashion_pairs["text"][r]), text_hash="-", fused_vector=pack(np.zeros(head.dim)),
                         space_version=head.version, image_features=pack(fashion_pairs["features"][photo_of[r]]),
                         image_logits=pack(fashion_pairs["logits"][photo_of[r]], np.float16))
        for p, r in zip(products, rows, strict=True)
    ])
    return {"products": products, "swapped": [products[k] for k in SWAPPED], "head": head}


def test_a_wrong_photo_is_listed_as_a_likely_mismatch(catalog):
    # given a catalog where four products carry another product's photo
    from search.consistency import consistency_refresh, likely_mismatches

    # when every product is scored in the head's space
    assert consistency_refresh(catalog["head"]) == N_PRODUCTS
    limit, flagged = likely_mismatches(catalog["head"].version, limit=50)
    # then the lowest 3 % (6 products) hold every wrong photo
    assert limit.n_scored == N_PRODUCTS
    assert {e.product_id for e in flagged} >= {p.pk for p in catalog["swapped"]}
    assert len(flagged) <= 6


def test_search_status_and_the_admin_list_show_the_wrong_photo(catalog, admin_client, monkeypatch):
    # given the scored catalog, served by the head
    from search import consistency

    consistency.consistency_refresh(catalog["head"])
    monkeypatch.setattr(consistency, "_live_version", lambda: catalog["head"].version)
    swapped = catalog["swapped"][0]
    # when staff run search_status and open the admin's product list
    out = io.StringIO()
    call_command("search_status", stdout=out)
    page = admin_client.get("/admin/shop/product/", {"q": swapped.title}).content.decode()
    # then both name the product as a likely wrong photo
    assert "Likely wrong photos" in out.getvalue()
    assert swapped.title[:30] in out.getvalue()
    assert "likely wrong photo" in page


def test_the_bridge_flags_nothing(db, settings):
    # given no trained head (the zero-shot bridge's space)
    from search.consistency import threshold

    # then no product is flagged, and the reason is said
    t = threshold("bridge-00000000")
    assert t.value is None
    assert "bridge" in t.reason
