"""The two encoders as the ONNX Runtime tests load them, with real inputs from CATALOG_DIR.

Each (encoder, runtime) pair loads once per test run: torch, and ONNX Runtime exporting into a
folder of its own (so the first load there is the one that writes the export).
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image

from mlmodels.image import EfficientNetEncoder
from mlmodels.text import MiniLMEncoder


@cache
def real_photos() -> tuple[Image.Image, ...]:
    """Three Flipkart product photos and three Grocery shop-floor photos, as decoded RGB images."""
    data = Path(settings.CATALOG_DIR)
    flipkart = sorted((data / "flipkart" / "images").glob("*.jpg"))[:3]
    grocery = [data / "grocery" / line.split(",")[0] for line in (data / "grocery" / "val.txt").read_text().splitlines()[::100][:3]]
    photos = []
    for path in flipkart + grocery:
        with Image.open(path) as im:
            photos.append(im.convert("RGB"))
    return tuple(photos)


@cache
def shopper_queries(n: int = 12) -> tuple[str, ...]:
    """``n`` real shopper queries from the CrowdFlower judgments, in file order."""
    queries: list[str] = []
    with (Path(settings.CATALOG_DIR) / "crowdflower" / "train.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            if rec["query"] not in queries:
                queries.append(rec["query"])
            if len(queries) == n:
                break
    return tuple(queries)


@dataclass(frozen=True)
class Kind:
    """One encoder under test.

    Attributes:
        name: ``"image"`` or ``"text"`` (``mlmodels.<name>``, ``search.embedding.encoding.<name>_encoder``).
        setting: its runtime setting; ``other_setting`` the other encoder's.
        check_id: the ``manage.py check`` error for an unknown runtime.
        file_prefix: start of its cached export's file name.
        weights: a word in the name of an initializer the tests add noise to.
    """

    name: str
    setting: str
    other_setting: str
    check_id: str
    file_prefix: str
    weights: str

    def load(self, **kwargs) -> EfficientNetEncoder | MiniLMEncoder:
        """A new encoder on CPU, one thread."""
        cls = EfficientNetEncoder if self.name == "image" else MiniLMEncoder
        return cls("cpu", threads=1, **kwargs)

    def outputs(self, encoder: EfficientNetEncoder | MiniLMEncoder) -> np.ndarray:
        """Unit vectors of real inputs: features of two photos, or vectors of three shopper queries."""
        if self.name == "image":
            return encoder.encode(list(real_photos()[:2])).features
        return encoder.encode_query(list(shopper_queries(3)))


KINDS = {
    "image": Kind("image", "IMAGE_ENCODER_RUNTIME", "TEXT_ENCODER_RUNTIME", "search.E006", "efficientnet-lite0-", "_fc.weight"),
    "text": Kind("text", "TEXT_ENCODER_RUNTIME", "IMAGE_ENCODER_RUNTIME", "search.E007", "all-minilm-l6-v2-", "word_embeddings"),
}


@cache
def torch_encoder(kind: str) -> EfficientNetEncoder | MiniLMEncoder:
    return KINDS[kind].load(runtime="torch")


@cache
def onnx_encoder(kind: str) -> EfficientNetEncoder | MiniLMEncoder:
    """The ONNX Runtime encoder whose load wrote the export into :func:`onnx_cache_dir`."""
    return KINDS[kind].load(runtime="onnx", cache_dir=onnx_cache_dir(kind))


@cache
def onnx_cache_dir(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"onnx-{kind}-", dir=settings.VAR_DIR))


def onnx_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())
