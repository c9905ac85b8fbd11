"""The text encoder through ONNX Runtime: the same vectors and neighbours as torch on real
product texts and shopper queries, a cached export reused, a damaged one replaced, and torch
whenever it is asked for or ONNX cannot run."""

from __future__ import annotations

import csv
import logging
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from django.conf import settings

from mlmodels.text import MAX_SEQ_LENGTH, TextEncoder, describe_runtime, select_runtime
from search.documents import compose_document_text
from shop.importers import read_catalog

N_PRODUCTS = 300


def flipkart_documents(n: int = N_PRODUCTS) -> list[str]:
    """The first ``n`` Flipkart products as the indexer feeds them to the text encoder."""
    rows = [r for r in read_catalog("flipkart", Path(settings.CATALOG_DIR) / "flipkart") if not r.skip_reason][:n]
    return [compose_document_text(title=r.title, brand=r.brand, category_path=r.category_path, description=r.description)
            for r in rows]


def shopper_queries(n: int = 12) -> list[str]:
    """``n`` real shopper queries from the CrowdFlower judgments, in file order."""
    queries: list[str] = []
    with (Path(settings.CATALOG_DIR) / "crowdflower" / "train.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            if rec["query"] not in queries:
                queries.append(rec["query"])
            if len(queries) == n:
                break
    return queries


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def onnx_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def documents() -> list[str]:
    return flipkart_documents()


@pytest.fixture(scope="module")
def torch_encoder() -> TextEncoder:
    return TextEncoder("cpu", runtime="torch")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def onnx_encoder(cache_dir) -> TextEncoder:
    return TextEncoder("cpu", runtime="onnx", cache_dir=cache_dir, threads=1)


@pytest.fixture(scope="module")
def document_vectors(documents, torch_encoder, onnx_encoder) -> dict[str, np.ndarray]:
    return {"torch": torch_encoder.encode_document(documents), "onnx": onnx_encoder.encode_document(documents)}


# -- choosing the runtime (no model loaded) ------------------------------------------------------------
def test_auto_runs_onnx_on_cpu_and_torch_on_cuda():
    assert select_runtime("auto", torch.device("cpu")) == "onnx"
    assert select_runtime("auto", torch.device("cuda")) == "torch"
    assert select_runtime("onnx", torch.device("cuda")) == "torch"
    assert select_runtime("torch", torch.device("cpu")) == "torch"


def test_runtime_comes_from_its_own_environment_variable(monkeypatch):
    monkeypatch.setenv("TEXT_ENCODER_RUNTIME", "torch")
    monkeypatch.setenv("IMAGE_ENCODER_RUNTIME", "onnx")

    assert select_runtime(None, torch.device("cpu")) == "torch"


def test_unknown_runtime_is_refused_with_the_valid_values():
    with pytest.raises(ValueError, match=r"Unknown text encoder runtime 'openvino'; valid values: auto, onnx, torch"):
        select_runtime("openvino", torch.device("cpu"))


def test_describe_runtime_says_where_the_export_goes(tmp_path):
    # when nothing is cached yet
    text = describe_runtime("cpu", "auto", tmp_path)
    # then
    assert text.startswith(f"onnxruntime 1.31.1 on cpu (exported on first use to {tmp_path}/all-minilm-l6-v2-")
    assert describe_runtime("cpu", "torch", tmp_path) == "torch on cpu (TEXT_ENCODER_RUNTIME=torch)"


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
    queries = shopper_queries()
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
    queries = shopper_queries(8)
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


# -- the cached export -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_load_reuses_the_cached_export(onnx_encoder, cache_dir, torch_encoder):
    # given the export the first encoder wrote
    assert onnx_encoder.onnx_exported
    path = onnx_encoder._onnx.path
    before = path.stat()
    # when another encoder loads from the same folder
    second = TextEncoder("cpu", runtime="onnx", cache_dir=cache_dir, threads=1)
    # then it ran the same file without exporting again, and left nothing else behind
    assert second.runtime == "onnx" and not second.onnx_exported
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert onnx_files(cache_dir) == [path.name]
    assert path.name.startswith("all-minilm-l6-v2-") and f"torch{torch.__version__.split('+')[0]}" in path.name
    assert cosines(second.encode_query(["cotton bath towel"]), torch_encoder.encode_query(["cotton bath towel"]))[0] > 0.9999
    assert describe_runtime("cpu", "auto", cache_dir) == f"onnxruntime 1.31.1 on cpu (export cached: {path})"


@pytest.mark.slow
def test_a_truncated_cached_export_is_exported_again_with_a_warning(onnx_encoder, tmp_path, torch_encoder, caplog):
    # given a cached export cut short (a disk filled up, a copy interrupted)
    path = tmp_path / onnx_encoder._onnx.path.name
    data = onnx_encoder._onnx.path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    # when an encoder loads from that folder
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        encoder = TextEncoder("cpu", runtime="onnx", cache_dir=tmp_path, threads=1)
    # then it said so, wrote a whole export in its place, and encodes like torch
    assert "Cached text encoder export is unusable, exporting it again" in caplog.text
    assert encoder.runtime == "onnx" and encoder.onnx_exported
    assert path.stat().st_size == len(data)
    queries = shopper_queries(3)
    assert cosines(encoder.encode_query(queries), torch_encoder.encode_query(queries)).min() > 0.9999


@pytest.mark.slow
def test_a_cached_export_that_computes_something_else_is_exported_again(onnx_encoder, tmp_path, caplog):
    # given a cached file that loads but whose word embeddings carry noise of 0.01 (not a constant
    # shift: the embedding LayerNorm would remove that)
    import onnx
    from onnx import numpy_helper

    model = onnx.load(onnx_encoder._onnx.path)
    words = next(t for t in model.graph.initializer if "word_embeddings" in t.name)
    table = numpy_helper.to_array(words)
    noise = np.random.default_rng(0).normal(0, 0.01, table.shape).astype(table.dtype)
    words.CopyFrom(numpy_helper.from_array(table + noise, words.name))
    path = tmp_path / onnx_encoder._onnx.path.name
    onnx.save(model, path)
    # when
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        encoder = TextEncoder("cpu", runtime="onnx", cache_dir=tmp_path, threads=1)
    # then the probe texts caught it, and the file was replaced by a true export
    assert "differs from torch (embeddings " in caplog.text
    assert encoder.runtime == "onnx" and encoder.onnx_exported
    assert path.read_bytes() == onnx_encoder._onnx.path.read_bytes()


# -- torch when asked for, or when ONNX cannot run ------------------------------------------------------------
@pytest.mark.slow
def test_without_onnxruntime_the_encoder_runs_torch(monkeypatch, tmp_path, caplog, torch_encoder):
    # given onnxruntime cannot be imported (None in sys.modules makes `import onnxruntime` raise ImportError)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    # when
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        encoder = TextEncoder("cpu", runtime="onnx", cache_dir=tmp_path, threads=1)
    # then torch runs, giving torch's vectors, nothing was exported, and the log says why
    assert encoder.runtime == "torch" and encoder.batch_size == 64
    assert "Text encoder falls back to torch on CPU (slower): onnxruntime is not installed" in caplog.text
    assert onnx_files(tmp_path) == []
    np.testing.assert_array_equal(encoder.encode_query(["wall clock"]), torch_encoder.encode_query(["wall clock"]))


@pytest.mark.slow
def test_runtime_setting_torch_keeps_torch(settings, tmp_path):
    # given the storefront configured for torch on CPU
    from search.encoding import text_encoder

    settings.TEXT_ENCODER_RUNTIME = "torch"
    settings.ENCODER_CACHE_DIR = tmp_path
    settings.ENCODER_DEVICE = "cpu"
    # when the storefront's encoder loads
    encoder = text_encoder()
    # then it is torch, and no export was written
    assert encoder.runtime == "torch"
    assert encoder.runtime_note == "torch on cpu"
    assert onnx_files(tmp_path) == []


@pytest.mark.slow
def test_storefront_encoder_runs_onnx_by_default_on_cpu(settings):
    # given the default settings on a CPU-only machine
    from search.encoding import bridge, text_encoder

    settings.ENCODER_DEVICE = "cpu"
    # when
    encoder = text_encoder()
    # then its export lives in the configured cache folder, and the zero-shot bridge uses it too
    assert settings.TEXT_ENCODER_RUNTIME == "auto"
    assert encoder.runtime == "onnx"
    assert encoder._onnx.path.parent == Path(settings.ENCODER_CACHE_DIR)
    assert encoder._onnx.threads == torch.get_num_threads()
    assert bridge() is bridge()


@pytest.mark.django_db
def test_search_status_names_the_text_encoder_runtime(settings):
    # given
    import io

    from django.core.management import call_command

    settings.ENCODER_DEVICE = "cpu"
    out = io.StringIO()
    # when
    call_command("search_status", stdout=out)
    settings.TEXT_ENCODER_RUNTIME = "torch"
    call_command("search_status", stdout=out)
    settings.TEXT_ENCODER_RUNTIME = "openvino"
    call_command("search_status", stdout=out)
    # then
    assert "Text encoder: onnxruntime 1.31.1 on cpu (" in out.getvalue()
    assert "Text encoder: torch on cpu (TEXT_ENCODER_RUNTIME=torch)." in out.getvalue()
    assert "Text encoder: Unknown text encoder runtime 'openvino'; valid values: auto, onnx, torch" in out.getvalue()


def test_an_unknown_runtime_setting_fails_manage_py_check(settings):
    # given
    from django.core.checks import run_checks

    settings.TEXT_ENCODER_RUNTIME = "openvino"
    # when
    errors = [e for e in run_checks() if e.id == "search.E007"]
    # then
    assert [(e.msg, e.hint) for e in errors] == [("TEXT_ENCODER_RUNTIME is 'openvino'.", "Use one of: auto, onnx, torch.")]
