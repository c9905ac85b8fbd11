"""Both encoders follow the same ONNX Runtime rules (mlmodels.onnx_export): chosen by their own
setting, ONNX Runtime on CPU by default, a cached export reused, a damaged one replaced, torch
when asked for or when ONNX cannot run, and the choice shown by search_status and checked by
``manage.py check``. Each test runs for the image and the text encoder."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.encoders import KINDS, Kind, onnx_cache_dir, onnx_encoder, onnx_files, torch_encoder

pytestmark = pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())


def module(kind: Kind):
    import importlib

    return importlib.import_module(f"mlmodels.{kind.name}")


def assert_same_vectors(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4


# -- choosing the runtime (no model loaded) ------------------------------------------------------------
def test_auto_runs_onnx_on_cpu_and_torch_on_cuda(kind):
    select = module(kind).select_runtime

    assert select("auto", torch.device("cpu")) == "onnx"
    assert select("auto", torch.device("cuda")) == "torch"
    assert select("onnx", torch.device("cuda")) == "torch"
    assert select("torch", torch.device("cpu")) == "torch"


def test_runtime_comes_from_its_own_environment_variable(kind, monkeypatch):
    monkeypatch.setenv(kind.setting, "torch")
    monkeypatch.setenv(kind.other_setting, "onnx")
    assert module(kind).select_runtime(None, torch.device("cpu")) == "torch"

    monkeypatch.setenv(kind.setting, "onnx")
    monkeypatch.setenv(kind.other_setting, "torch")
    assert module(kind).select_runtime(None, torch.device("cpu")) == "onnx"


def test_unknown_runtime_is_refused_with_the_valid_values(kind):
    with pytest.raises(ValueError, match=rf"Unknown {kind.name} encoder runtime 'tensorrt'; valid values: auto, onnx, torch"):
        module(kind).select_runtime("tensorrt", torch.device("cpu"))


def test_describe_runtime_says_where_the_export_goes(kind, tmp_path):
    # when nothing is cached yet
    text = module(kind).describe_runtime("cpu", "auto", tmp_path)
    # then
    assert text.startswith(f"onnxruntime 1.31.1 on cpu (exported on first use to {tmp_path}/{kind.file_prefix}")
    assert module(kind).describe_runtime("cpu", "torch", tmp_path) == f"torch on cpu ({kind.setting}=torch)"


@pytest.mark.django_db
def test_search_status_names_the_runtime(kind, settings):
    # given
    import io

    from django.core.management import call_command

    settings.ENCODER_DEVICE = "cpu"
    out = io.StringIO()
    label = f"{kind.name.capitalize()} encoder"
    # when
    call_command("search_status", stdout=out)
    setattr(settings, kind.setting, "torch")
    call_command("search_status", stdout=out)
    setattr(settings, kind.setting, "tensorrt")
    call_command("search_status", stdout=out)
    # then
    assert f"{label}: onnxruntime 1.31.1 on cpu (" in out.getvalue()
    assert f"{label}: torch on cpu ({kind.setting}=torch)." in out.getvalue()
    assert f"{label}: Unknown {kind.name} encoder runtime 'tensorrt'; valid values: auto, onnx, torch" in out.getvalue()


def test_an_unknown_runtime_setting_fails_manage_py_check(kind, settings):
    # given
    from django.core.checks import run_checks

    setattr(settings, kind.setting, "tensorrt")
    # when
    errors = [e for e in run_checks() if e.id.startswith("search.E00")]
    # then
    assert [(e.id, e.msg, e.hint) for e in errors] == [(kind.check_id, f"{kind.setting} is 'tensorrt'.", "Use one of: auto, onnx, torch.")]


# -- the cached export -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_load_reuses_the_cached_export(kind):
    # given the export the first ONNX Runtime encoder wrote
    first = onnx_encoder(kind.name)
    cache_dir = onnx_cache_dir(kind.name)
    assert first.onnx_exported
    path = first._onnx.path
    before = path.stat()
    # when another encoder loads from the same folder
    second = kind.load(runtime="onnx", cache_dir=cache_dir)
    # then it ran the same file without exporting again, left nothing else behind, and encodes like torch
    assert second.runtime == "onnx" and not second.onnx_exported
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert onnx_files(cache_dir) == [path.name]
    assert path.name.startswith(kind.file_prefix) and f"torch{torch.__version__.split('+')[0]}" in path.name
    assert_same_vectors(kind.outputs(second), kind.outputs(torch_encoder(kind.name)))
    assert module(kind).describe_runtime("cpu", "auto", cache_dir) == f"onnxruntime 1.31.1 on cpu (export cached: {path})"


@pytest.mark.slow
def test_a_truncated_cached_export_is_exported_again_with_a_warning(kind, tmp_path, caplog):
    # given a cached export cut short (a disk filled up, a copy interrupted)
    good = onnx_encoder(kind.name)._onnx.path
    path = tmp_path / good.name
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    # when an encoder loads from that folder
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        encoder = kind.load(runtime="onnx", cache_dir=tmp_path)
    # then it said so, wrote a whole export in its place, and encodes like torch
    assert f"Cached {kind.name} encoder export is unusable, exporting it again" in caplog.text
    assert encoder.runtime == "onnx" and encoder.onnx_exported
    assert path.stat().st_size == len(data)
    assert_same_vectors(kind.outputs(encoder), kind.outputs(torch_encoder(kind.name)))


@pytest.mark.slow
def test_a_cached_export_that_computes_something_else_is_exported_again(kind, tmp_path, caplog):
    # given a cached file that loads but whose weights carry noise of 0.01 (noise, not a constant
    # shift: a LayerNorm right after BERT's word embeddings would remove that)
    import onnx
    from onnx import numpy_helper

    good = onnx_encoder(kind.name)._onnx.path
    model = onnx.load(good)
    weights = next(t for t in model.graph.initializer if kind.weights in t.name)
    values = numpy_helper.to_array(weights)
    noise = np.random.default_rng(0).normal(0, 0.01, values.shape).astype(values.dtype)
    weights.CopyFrom(numpy_helper.from_array(values + noise, weights.name))
    path = tmp_path / good.name
    onnx.save(model, path)
    # when
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        encoder = kind.load(runtime="onnx", cache_dir=tmp_path)
    # then the probe batch caught it, and the file was replaced by a true export
    assert "differs from torch (" in caplog.text
    assert encoder.runtime == "onnx" and encoder.onnx_exported
    assert path.read_bytes() == good.read_bytes()


# -- torch when asked for, or when ONNX cannot run ------------------------------------------------------------
@pytest.mark.slow
def test_without_onnxruntime_the_encoder_runs_torch(kind, monkeypatch, tmp_path, caplog):
    # given onnxruntime cannot be imported (None in sys.modules makes `import onnxruntime` raise ImportError)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    # when
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        encoder = kind.load(runtime="onnx", cache_dir=tmp_path)
    # then torch runs, giving torch's outputs, nothing was exported, and the log says why
    assert encoder.runtime == "torch"
    assert f"{kind.name.capitalize()} encoder falls back to torch on CPU (slower): onnxruntime is not installed" in caplog.text
    assert onnx_files(tmp_path) == []
    np.testing.assert_array_equal(kind.outputs(encoder), kind.outputs(torch_encoder(kind.name)))


@pytest.mark.slow
def test_runtime_setting_torch_keeps_torch(kind, settings, tmp_path):
    # given the storefront configured for torch on CPU
    from search.embedding import encoders

    setattr(settings, kind.setting, "torch")
    settings.ENCODER_CACHE_DIR = tmp_path
    settings.ENCODER_DEVICE = "cpu"
    # when the storefront's encoder loads
    encoder = getattr(encoders, f"{kind.name}_encoder")()
    # then it is torch, and no export was written
    assert encoder.runtime == "torch"
    assert encoder.runtime_note == "torch on cpu"
    assert onnx_files(tmp_path) == []


@pytest.mark.slow
def test_storefront_encoder_runs_onnx_by_default_on_cpu(kind, settings):
    # given the default settings on a CPU-only machine
    import os

    from search.embedding import encoders

    settings.ENCODER_DEVICE = "cpu"
    # when
    encoder = getattr(encoders, f"{kind.name}_encoder")()
    # then its export lives in the configured cache folder, run with ENCODER_CPU_THREADS threads
    assert getattr(settings, kind.setting) == "auto"
    assert encoder.runtime == "onnx"
    assert encoder._onnx.path.parent == Path(settings.ENCODER_CACHE_DIR)
    assert encoder._onnx.threads == torch.get_num_threads() == int(os.environ.get("ENCODER_CPU_THREADS", 1))
