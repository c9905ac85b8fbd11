"""The image encoder through ONNX Runtime: same features as torch on real photos, a cached export
reused, a damaged one replaced, and torch whenever ONNX cannot run (search never breaks)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from django.conf import settings
from PIL import Image

from mlmodels.image import ImageEncoder, describe_runtime, select_runtime

ROOT = Path(__file__).resolve().parent.parent


def real_photos() -> list[Image.Image]:
    """Three Flipkart product photos and three Grocery shop-floor photos, as decoded RGB images."""
    data = Path(settings.CATALOG_DIR)
    flipkart = sorted((data / "flipkart" / "images").glob("*.jpg"))[:3]
    grocery = [data / "grocery" / line.split(",")[0] for line in (data / "grocery" / "val.txt").read_text().splitlines()[::100][:3]]
    photos = []
    for path in flipkart + grocery:
        with Image.open(path) as im:
            photos.append(im.convert("RGB"))
    return photos


def top5(logits: np.ndarray) -> list[list[int]]:
    return [sorted(row) for row in np.argsort(-logits, axis=1)[:, :5].tolist()]


def onnx_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return real_photos()


@pytest.fixture(scope="module")
def torch_encoder() -> ImageEncoder:
    return ImageEncoder("cpu", runtime="torch")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def onnx_encoder(cache_dir) -> ImageEncoder:
    return ImageEncoder("cpu", runtime="onnx", cache_dir=cache_dir, threads=1)


# -- choosing the runtime (no model loaded) ------------------------------------------------------------
def test_auto_runs_onnx_on_cpu_and_torch_on_cuda():
    assert select_runtime("auto", torch.device("cpu")) == "onnx"
    assert select_runtime("auto", torch.device("cuda")) == "torch"
    assert select_runtime("onnx", torch.device("cuda")) == "torch"
    assert select_runtime("torch", torch.device("cpu")) == "torch"


def test_runtime_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("IMAGE_ENCODER_RUNTIME", "torch")

    assert select_runtime(None, torch.device("cpu")) == "torch"


def test_unknown_runtime_is_refused_with_the_valid_values():
    with pytest.raises(ValueError, match=r"Unknown image encoder runtime 'tensorrt'; valid values: auto, onnx, torch"):
        select_runtime("tensorrt", torch.device("cpu"))


def test_describe_runtime_says_where_the_export_goes(tmp_path):
    # when nothing is cached yet
    text = describe_runtime("cpu", "auto", tmp_path)
    # then
    assert text.startswith("onnxruntime 1.31.1 on cpu (exported on first use to ")
    assert str(tmp_path) in text
    assert describe_runtime("cpu", "torch", tmp_path) == "torch on cpu (IMAGE_ENCODER_RUNTIME=torch)"


# -- same answers as torch on real photos ----------------------------------------------------------------
@pytest.mark.slow
def test_onnx_matches_torch_on_a_batch_of_real_photos(photos, torch_encoder, onnx_encoder):
    # when six real photos are encoded in one call by each runtime
    want = torch_encoder.encode(photos)
    got = onnx_encoder.encode(photos)
    # then ONNX Runtime really ran, and gave torch's features and ImageNet classes
    assert onnx_encoder.runtime == "onnx" and torch_encoder.runtime == "torch"
    assert got.features.shape == (6, 1280) and got.logits.shape == (6, 1000)
    assert np.abs(got.features - want.features).max() < 1e-4
    assert np.abs(got.logits - want.logits).max() < 1e-3
    assert top5(got.logits) == top5(want.logits)
    np.testing.assert_allclose(np.linalg.norm(got.features, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_onnx_matches_torch_one_photo_at_a_time(photos, torch_encoder, onnx_encoder):
    for photo in photos:
        # when a single photo is encoded, as for a shopper's photo query
        want = torch_encoder.encode([photo])
        got = onnx_encoder.encode([photo])
        # then
        assert got.features.shape == (1, 1280)
        assert np.abs(got.features - want.features).max() < 1e-4
        assert top5(got.logits) == top5(want.logits)


@pytest.mark.slow
def test_batch_size_does_not_change_the_features(photos, cache_dir):
    # given the same export run 1 photo and 5 photos per forward pass
    one = ImageEncoder("cpu", batch_size=1, runtime="onnx", cache_dir=cache_dir, threads=1).encode(photos)
    five = ImageEncoder("cpu", batch_size=5, runtime="onnx", cache_dir=cache_dir, threads=1).encode(photos)
    # then
    assert np.abs(one.features - five.features).max() < 1e-5


# -- the cached export -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_load_reuses_the_cached_export(onnx_encoder, cache_dir, photos, torch_encoder):
    # given the export the first encoder wrote
    assert onnx_encoder.onnx_exported
    path = onnx_encoder._onnx.path
    before = path.stat()
    # when another encoder loads from the same folder
    second = ImageEncoder("cpu", runtime="onnx", cache_dir=cache_dir, threads=1)
    # then it ran the same file without exporting again, and left no temporary file behind
    assert second.runtime == "onnx" and not second.onnx_exported
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert onnx_files(cache_dir) == [path.name]
    assert path.name.startswith("efficientnet-lite0-") and f"torch{torch.__version__.split('+')[0]}" in path.name
    assert np.abs(second.encode(photos[:2]).features - torch_encoder.encode(photos[:2]).features).max() < 1e-4
    assert describe_runtime("cpu", "auto", cache_dir) == f"onnxruntime 1.31.1 on cpu (export cached: {path})"


@pytest.mark.slow
def test_a_truncated_cached_export_is_exported_again_with_a_warning(onnx_encoder, tmp_path, photos, torch_encoder, caplog):
    # given a cached export cut in half (a disk filled up, a copy interrupted)
    path = tmp_path / onnx_encoder._onnx.path.name
    data = onnx_encoder._onnx.path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    # when an encoder loads from that folder
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        encoder = ImageEncoder("cpu", runtime="onnx", cache_dir=tmp_path, threads=1)
    # then it said so, wrote a whole export in its place, and encodes like torch
    assert "Cached image encoder export is unusable, exporting it again" in caplog.text
    assert encoder.runtime == "onnx" and encoder.onnx_exported
    assert path.stat().st_size == len(data)
    assert top5(encoder.encode(photos).logits) == top5(torch_encoder.encode(photos).logits)


@pytest.mark.slow
def test_a_cached_export_with_other_weights_is_exported_again(onnx_encoder, tmp_path, caplog):
    # given a cached file that loads but computes something else: its first convolution nudged by 0.01
    import onnx
    from onnx import numpy_helper

    model = onnx.load(onnx_encoder._onnx.path)
    stem = next(t for t in model.graph.initializer if len(t.dims) == 4)
    stem.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(stem) + 0.01, stem.name))
    path = tmp_path / onnx_encoder._onnx.path.name
    onnx.save(model, path)
    # when
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        encoder = ImageEncoder("cpu", runtime="onnx", cache_dir=tmp_path, threads=1)
    # then the probe batch caught it, and the file was replaced by a true export
    assert "differs from torch" in caplog.text
    assert encoder.runtime == "onnx" and encoder.onnx_exported
    assert path.read_bytes() == onnx_encoder._onnx.path.read_bytes()


@pytest.mark.slow
def test_workers_starting_at_once_all_get_a_whole_export(tmp_path):
    # given three processes loading the encoder into one empty cache folder at the same moment
    script = (
        "import sys; from mlmodels.image import ImageEncoder; "
        "e = ImageEncoder('cpu', runtime='onnx', cache_dir=sys.argv[1], threads=1); print(e.runtime)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    # then each runs ONNX Runtime and one whole file is left
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outputs == ["onnx", "onnx", "onnx"]
    assert len(onnx_files(tmp_path)) == 1 and onnx_files(tmp_path)[0].endswith(".onnx")


# -- torch when ONNX cannot run ---------------------------------------------------------------------------
@pytest.mark.slow
def test_an_export_that_cannot_be_written_falls_back_to_torch_once_warned(tmp_path, photos, torch_encoder, caplog):
    # given a cache folder that cannot be created (its parent is a file)
    (tmp_path / "not-a-folder").write_text("")
    cache = tmp_path / "not-a-folder" / "models"
    # when two encoders load with it
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        first = ImageEncoder("cpu", runtime="onnx", cache_dir=cache, threads=1)
        second = ImageEncoder("cpu", runtime="onnx", cache_dir=cache, threads=1)
    # then both run torch, giving torch's features, and the reason was logged once
    assert first.runtime == second.runtime == "torch"
    assert first.runtime_note.startswith("torch on cpu (ONNX Runtime unavailable: cannot write to ")
    assert caplog.text.count("Image encoder falls back to torch on CPU (slower): cannot write to") == 1
    np.testing.assert_array_equal(first.encode(photos[:2]).features, torch_encoder.encode(photos[:2]).features)


@pytest.mark.slow
def test_without_onnxruntime_the_encoder_runs_torch(monkeypatch, tmp_path, caplog):
    # given onnxruntime cannot be imported (None in sys.modules makes `import onnxruntime` raise ImportError)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    # when
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        encoder = ImageEncoder("cpu", runtime="onnx", cache_dir=tmp_path, threads=1)
    # then torch runs, nothing was exported, and the log says why
    assert encoder.runtime == "torch"
    assert "onnxruntime is not installed" in caplog.text
    assert onnx_files(tmp_path) == []


@pytest.mark.slow
def test_runtime_setting_torch_keeps_torch(settings, tmp_path):
    # given the storefront configured for torch on CPU
    from search.encoding import image_encoder

    settings.IMAGE_ENCODER_RUNTIME = "torch"
    settings.ENCODER_CACHE_DIR = tmp_path
    settings.ENCODER_DEVICE = "cpu"
    # when the storefront's encoder loads
    encoder = image_encoder()
    # then it is torch, and no export was written
    assert encoder.runtime == "torch"
    assert encoder.runtime_note == "torch on cpu"
    assert onnx_files(tmp_path) == []


@pytest.mark.slow
def test_storefront_encoder_runs_onnx_by_default_on_cpu(settings):
    # given the default settings on a CPU-only machine
    from search.encoding import image_encoder

    settings.ENCODER_DEVICE = "cpu"
    # when
    encoder = image_encoder()
    # then its export lives in the configured cache folder
    assert settings.IMAGE_ENCODER_RUNTIME == "auto"
    assert encoder.runtime == "onnx"
    assert encoder._onnx.path.parent == Path(settings.ENCODER_CACHE_DIR)
    assert encoder._onnx.threads == torch.get_num_threads() == int(os.environ.get("ENCODER_CPU_THREADS", 1))


@pytest.mark.django_db
def test_search_status_names_the_image_encoder_runtime(settings):
    # given
    import io

    from django.core.management import call_command

    settings.ENCODER_DEVICE = "cpu"
    out = io.StringIO()
    # when
    call_command("search_status", stdout=out)
    settings.IMAGE_ENCODER_RUNTIME = "torch"
    call_command("search_status", stdout=out)
    # then
    assert "Image encoder: onnxruntime 1.31.1 on cpu (" in out.getvalue()
    assert "Image encoder: torch on cpu (IMAGE_ENCODER_RUNTIME=torch)." in out.getvalue()


def test_an_unknown_runtime_setting_fails_manage_py_check(settings):
    # given
    from django.core.checks import run_checks

    settings.IMAGE_ENCODER_RUNTIME = "tensorrt"
    # when
    errors = [e for e in run_checks() if e.id == "search.E006"]
    # then
    assert [(e.msg, e.hint) for e in errors] == [("IMAGE_ENCODER_RUNTIME is 'tensorrt'.", "Use one of: auto, onnx, torch.")]
