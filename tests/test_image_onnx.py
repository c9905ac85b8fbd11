"""The image encoder through ONNX Runtime: the same features and ImageNet classes as torch on
real photos, whatever the batch, and workers sharing one export folder. The rules both
encoders share (cache, repair, fallback, settings) are in tests/test_encoder_runtime.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlmodels.image import EfficientNetEncoder
from tests.encoders import onnx_cache_dir, onnx_files, real_photos

ROOT = Path(__file__).resolve().parent.parent

#: Which encoder the ``torch_encoder`` and ``onnx_encoder`` fixtures (tests/conftest.py) load.
ENCODER_KIND = "image"


def top5(logits: np.ndarray) -> list[list[int]]:
    return [sorted(row) for row in np.argsort(-logits, axis=1)[:, :5].tolist()]


@pytest.fixture(scope="module")
def photos() -> list:
    return list(real_photos())


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
def test_batch_size_does_not_change_the_features(photos):
    # given the same export run 1 photo and 5 photos per forward pass
    cache_dir = onnx_cache_dir("image")
    one = EfficientNetEncoder("cpu", batch_size=1, runtime="onnx", cache_dir=cache_dir, threads=1).encode(photos)
    five = EfficientNetEncoder("cpu", batch_size=5, runtime="onnx", cache_dir=cache_dir, threads=1).encode(photos)
    # then
    assert np.abs(one.features - five.features).max() < 1e-5


# -- several workers, one folder ----------------------------------------------------------------------------
@pytest.mark.slow
def test_workers_starting_at_once_all_get_a_whole_export(tmp_path):
    # given three processes loading the encoder into one empty cache folder at the same moment
    script = (
        "import sys; from mlmodels.image import EfficientNetEncoder; "
        "e = EfficientNetEncoder('cpu', runtime='onnx', cache_dir=sys.argv[1], threads=1); print(e.runtime)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    # then each runs ONNX Runtime and one whole file is left
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outputs == ["onnx", "onnx", "onnx"]
    assert len(onnx_files(tmp_path)) == 1 and onnx_files(tmp_path)[0].endswith(".onnx")


@pytest.mark.slow
def test_an_export_that_cannot_be_written_falls_back_to_torch_once_warned(tmp_path, photos, torch_encoder, caplog):
    # given a cache folder that cannot be created (its parent is a file)
    (tmp_path / "not-a-folder").write_text("")
    cache = tmp_path / "not-a-folder" / "models"
    # when two encoders load with it
    with caplog.at_level(logging.WARNING, logger="mlmodels"):
        first = EfficientNetEncoder("cpu", runtime="onnx", cache_dir=cache, threads=1)
        second = EfficientNetEncoder("cpu", runtime="onnx", cache_dir=cache, threads=1)
    # then both run torch, giving torch's features, and the reason was logged once
    assert first.runtime == second.runtime == "torch"
    assert first.runtime_note.startswith("torch on cpu (ONNX Runtime unavailable: cannot write to ")
    assert caplog.text.count("Image encoder falls back to torch on CPU (slower): cannot write to") == 1
    np.testing.assert_array_equal(first.encode(photos[:2]).features, torch_encoder.encode(photos[:2]).features)
