"""The text encoder through ONNX Runtime: the same vectors and neighbours as torch on real
product texts and shopper queries, whatever the batch, long texts cut where torch cuts them,
and threads encoding at once. The rules both encoders share (cache, repair, fallback,
settings) are in tests/test_encoder_runtime.py."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from mlmodels.text import MAX_SEQ_LENGTH
from search.documents import compose_document_text
from shop.importers import read_catalog
from tests.encoders import shopper_queries

N_PRODUCTS = 300

#: Which encoder the ``torch_encoder`` and ``onnx_encoder`` fixtures (tests/conftest.py) load.
ENCODER_KIND = "text"


def flipkart_documents(n: int = N_PRODUCTS) -> list[str]:
    """The first ``n`` Flipkart products as the indexer feeds them to the text encoder."""
    rows = [r for r in read_catalog("flipkart", Path(settings.CATALOG_DIR) / "flipkart") if not r.skip_reason][:n]
    return [compose_document_text(title=r.title, brand=r.brand, category_path=r.category_path, description=r.description)
            for r in rows]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def documents() -> list[str]:
    return flipkart_documents()


@pytest.fixture(scope="module")
def document_vectors(documents, torch_encoder, onnx_encoder) -> dict[str, np.ndarray]:
    return {"torch": torch_encoder.encode_document(documents), "onnx": onnx_encoder.encode_document(documents)}


# -- same vectors and neighbours as torch on real texts ------------------------------------------------------
@pytest.mark.slow
def test_onnx_matches_torch_on_real_product_documents(document_vectors, onnx_encoder, torch_encoder):
    # when 300 Flipkart products' texts are encoded in one call by each runtime
    want, got = document_vectors["torch"], document_vectors["onnx"]
    # then ONNX Runtime really ran, and gave torch's unit vectors
    assert onnx_encoder.runtime == "onnx" and torch_encoder.runtime == "torch"
    assert got.shape == (N_PRODUCTS, 384) and got.dtype == np.float32
    assert cosines(got, want).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_onnx_matches_torch_one_query_at_a_time_and_in_a_batch(onnx_encoder, torch_encoder):
    queries = list(shopper_queries())
    # when real shopper queries are encoded one by one (a search) and all at once
    one_by_one = np.concatenate([onnx_encoder.encode_query([q]) for q in queries])
    together = onnx_encoder.encode_query(queries)
    want = np.concatenate([torch_encoder.encode_query([q]) for q in queries])
    # then every one is torch's vector, whatever the batch
    assert one_by_one.shape == (12, 384)
    assert cosines(one_by_one, want).min() > 0.9999
    assert np.abs(together - one_by_one).max() < 1e-5


@pytest.mark.slow
def test_the_same_top_10_products_for_shopper_queries(document_vectors, onnx_encoder, torch_encoder):
    # given the 300 products' vectors from each runtime, and real queries about things Flipkart sells
    queries = ["cotton bath towel", "analog watch for men", "baby girl dress", "ceramic coffee mug", "leather wallet",
               *shopper_queries(5)]
    q_torch, q_onnx = torch_encoder.encode_query(queries), onnx_encoder.encode_query(queries)
    # when each runtime ranks the products by cosine
    top_torch = np.argsort(-(q_torch @ document_vectors["torch"].T), axis=1)[:, :10]
    top_onnx = np.argsort(-(q_onnx @ document_vectors["onnx"].T), axis=1)[:, :10]
    # then the ten nearest products come in the same order for every query
    assert top_onnx.tolist() == top_torch.tolist()


@pytest.mark.slow
def test_long_texts_are_cut_at_the_same_token(documents, onnx_encoder, torch_encoder):
    # given real product texts longer than the encoder reads, and the same texts with more words after
    lengths = [len(ids) for ids in torch_encoder._model.tokenizer(documents[:40])["input_ids"]]
    long = [d for d, n in zip(documents[:40], lengths, strict=True) if n > MAX_SEQ_LENGTH + 20][:5]
    longer = [d + " Free shipping, cash on delivery and 30 days replacement on this product." * 5 for d in long]
    # when
    got, got_longer = onnx_encoder.encode_document(long), onnx_encoder.encode_document(longer)
    want, want_longer = torch_encoder.encode_document(long), torch_encoder.encode_document(longer)
    # then words past token 128 change nothing, in either runtime, and both runtimes agree
    assert len(long) == 5
    assert np.abs(got_longer - got).max() < 1e-6
    assert np.abs(want_longer - want).max() < 1e-6
    assert cosines(got_longer, want_longer).min() > 0.9999


@pytest.mark.slow
def test_threads_encoding_at_once_get_their_own_vectors(onnx_encoder):
    # given a web process's threads searching at the same time
    queries = list(shopper_queries(8))
    want = onnx_encoder.encode_query(queries)
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}

    def search(i: int) -> None:
        for _ in range(5):
            results[i].append(onnx_encoder.encode_query(queries[i:] + queries[:i]))

    threads = [threading.Thread(target=search, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then each got the vectors of its own queries
    for i, runs in results.items():
        assert len(runs) == 5
        for vectors in runs:
            assert np.abs(vectors - np.roll(want, -i, axis=0)).max() < 1e-5
