"""The trained fusion head: two small projections into one shared text-photo space.

A photo's image-encoder features (EfficientNet-Lite0: ``(1280,)``) and a text's text-encoder
vector (MiniLM: ``(384,)``) are
each centred on the training mean and projected to ``dim`` dimensions (``linear``: one matrix;
``mlp``: the matrix plus a residual LayerNorm-MLP block), then L2-normalised. Both encoders
stay frozen, so training reads cached features and an epoch over 6k pairs takes well under a
second on CPU.

Training is CLIP-style (Radford et al., "Learning Transferable Visual Models From Natural
Language Supervision", ICML 2021, eq. in Fig. 3): symmetric InfoNCE over in-batch pairs with a
learnable temperature ``exp(logit_scale)``, clamped to at most 100 as in CLIP. Products with
identical titles (``group_ids``) are not negatives of each other: their off-diagonal logits
are masked out of the softmax.

Artefacts (a directory per version: ``head.safetensors`` weights and ``head.json`` config)
are written and read by :mod:`mlmodels.head_artefacts`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mlmodels.device import select_device
from mlmodels.fusion import HEAD_KINDS
from mlmodels.registry import encoder_spec
from mlmodels.types import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, ImageFeatures

# Head kinds (HEAD_KINDS, kept in mlmodels.fusion so artefacts are checked without torch): ``linear``
# is the default. Measured on held-out fashion (bench/fusion_head.py): the ``mlp`` head (dropout
# 0.6) scored nDCG@10 0.530 vs 0.507 on "<colour> <type> for <gender>" queries but tied on a
# product's own text -> photo (0.548 vs 0.545; recall@1 0.359 vs 0.377), at twice the CPU time
# (24 s vs 13 s).
DEFAULT_DIM = 256
#: Training defaults, chosen on a dev split carved from the training products of the 7.7k
#: fashion pairs (bench/fusion_head.py --dev), never on the held-out products. Without
#: regularisation the head overfits within 10 epochs (held-out nDCG@10 falls as epochs grow);
#: input dropout 0.5 and soft targets (weight 0.5, temperature 0.1) let it train 40 epochs and
#: lifted dev nDCG@10 on "<colour> <type> for <gender>" queries from 0.43 to 0.48.
DEFAULT_EPOCHS = 40
DEFAULT_BATCH_SIZE = 256
DEFAULT_LR = 2e-3
DEFAULT_WEIGHT_DECAY = 0.05
DEFAULT_DROPOUT = 0.5
DEFAULT_SOFT_WEIGHT = 0.5
DEFAULT_SOFT_TEMPERATURE = 0.1
#: Hidden width of the ``mlp`` head's residual block, as a multiple of ``dim``.
MLP_EXPANSION = 2
#: CLIP's initial temperature 0.07 and its cap of 100 on the logit scale.
LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100.0)
#: Intra-op threads while training on CPU. The matrices are small (256 x 1280): measured on the
#: 2-core machine under load, 5 epochs over 6k pairs took 2.8 s with 1 thread and 79 s with 2
#: (threads spin waiting for each other when the cores are shared).
CPU_TRAIN_THREADS = 1
#: Rows projected per forward pass at inference (bounded memory on big catalogs).
INFERENCE_CHUNK = 8192

class Projection(nn.Module):
    """``x -> normalise(P(x - mean))``; ``mlp`` adds ``h + W2 gelu(W1 LayerNorm(h))`` after ``P``."""

    def __init__(self, in_dim: int, dim: int, kind: str, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_dim, dim)
        self.kind = kind
        if kind == "mlp":
            self.norm = nn.LayerNorm(dim)
            self.fc1 = nn.Linear(dim, MLP_EXPANSION * dim)
            self.fc2 = nn.Linear(MLP_EXPANSION * dim, dim)
            nn.init.zeros_(self.fc2.weight)  # the block starts as the identity: linear head + a learned correction
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.dropout(x - self.mean))
        if self.kind == "mlp":
            h = h + self.fc2(F.gelu(self.fc1(self.norm(h))))
        return F.normalize(h, dim=-1)


class FusionHead(nn.Module):
    """Both projections and the learnable logit scale (log of the inverse temperature)."""

    def __init__(self, dim: int, kind: str, text_dim: int, image_dim: int, dropout: float = 0.0):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"Unknown head kind {kind!r}; valid kinds: {', '.join(HEAD_KINDS)}")
        self.text = Projection(text_dim, dim, kind, dropout)
        self.image = Projection(image_dim, dim, kind, dropout)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))


class TrainedSpace:
    """A trained head as a :class:`mlmodels.fusion.FusionSpace` (``name = "fusion"``).

    Attributes:
        dim: dimension of the shared space.
        version: ``"fusion-<8 hex>"``, a hash of the training data and params: the same data and
            params give the same version (and, training being deterministic, the same weights).
        kind: ``"linear"`` or ``"mlp"``.
        params: training parameters (dim, kind, epochs, batch size, lr, weight decay, seed, n).
        data_hash: sha256 of the training features and groups.
        temperature: the learned softmax temperature ``1 / exp(logit_scale)``.
        metrics: held-out metrics recorded in the artefact (empty until measured).
    """

    name = "fusion"

    def __init__(self, head: FusionHead, *, params: dict, data_hash: str, version: str | None = None, metrics: dict | None = None):
        self._head = head.to("cpu").eval()
        self.params = dict(params)
        self.kind = self.params["kind"]
        self.dim = int(self.params["dim"])
        self.data_hash = data_hash
        self.version = version or space_version(data_hash, self.params)
        self.metrics = dict(metrics or {})
        self.text_dim = head.text.proj.in_features
        self.image_dim = head.image.proj.in_features

    @property
    def temperature(self) -> float:
        return float(1.0 / self._head.logit_scale.detach().exp())

    def text(self, text_vectors: np.ndarray) -> np.ndarray:
        """``(n, text_dim)`` text-encoder vectors (384 for MiniLM) -> ``(n, dim)`` float32, L2-normalised.

        Raises:
            ValueError: not a 2-d array with ``text_dim`` columns.
        """
        return self._project(self._head.text, text_vectors, self.text_dim, "text vectors")

    def image(self, features: ImageFeatures | np.ndarray) -> np.ndarray:
        """Photo features ``(n, image_dim)`` (an :class:`ImageFeatures` or the array) -> ``(n, dim)`` float32, L2-normalised.

        Raises:
            ValueError: not a 2-d array with ``image_dim`` columns.
        """
        array = features.features if isinstance(features, ImageFeatures) else features
        return self._project(self._head.image, array, self.image_dim, "image features")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Weights as contiguous CPU tensors (what the artefact stores)."""
        return {k: v.detach().cpu().contiguous() for k, v in self._head.state_dict().items()}

    @staticmethod
    def _project(module: Projection, x: np.ndarray, in_dim: int, what: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != in_dim:
            raise ValueError(f"The fusion head expects {what} of shape (n, {in_dim}); got {x.shape}")
        out = np.empty((x.shape[0], module.proj.out_features), np.float32)
        with torch.inference_mode():
            for start in range(0, x.shape[0], INFERENCE_CHUNK):
                out[start:start + INFERENCE_CHUNK] = module(torch.from_numpy(x[start:start + INFERENCE_CHUNK])).numpy()
        return out


# -- training ------------------------------------------------------------------------------------
def data_fingerprint(text_vectors: np.ndarray, image_features: np.ndarray, group_ids: Sequence[str] | None = None) -> str:
    """sha256 (hex) of the training pairs' bytes and groups: equal data, equal hash."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(text_vectors, np.float32).tobytes())
    h.update(np.ascontiguousarray(image_features, np.float32).tobytes())
    if group_ids is not None:
        h.update("\x1f".join(map(str, group_ids)).encode())
    return h.hexdigest()


def space_version(data_hash: str, params: dict) -> str:
    """``"fusion-" + 8 hex`` of sha1(data hash + params as sorted JSON)."""
    return "fusion-" + hashlib.sha1((data_hash + json.dumps(params, sort_keys=True)).encode()).hexdigest()[:8]


def contrastive_loss(
    text: torch.Tensor,
    image: torch.Tensor,
    logit_scale: torch.Tensor,
    groups: torch.Tensor | None = None,
    soft_targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of ``b`` pairs (CLIP), optionally with soft targets.

    Args:
        text, image: ``(b, d)`` L2-normalised projections; row ``i`` of each is one pair.
        logit_scale: scalar, ``log(1 / temperature)``.
        groups: ``(b,)`` integer group codes; pairs of one group are not negatives of each other
            (their off-diagonal logits are masked out).
        soft_targets: ``(b, b)`` symmetric target distribution (rows sum to 1, zero where masked);
            default: the identity (plain InfoNCE).

    Returns:
        ``(CE(image -> text) + CE(text -> image)) / 2``, a scalar.
    """
    logits = logit_scale.exp() * image @ text.T
    if groups is not None:
        same = groups[:, None] == groups[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    if soft_targets is None:
        target = torch.arange(text.shape[0], device=text.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    def soft_ce(lg: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(lg, dim=1)
        return -torch.where(soft_targets > 0, soft_targets * logp, torch.zeros_like(logp)).sum(dim=1).mean()

    return (soft_ce(logits) + soft_ce(logits.T)) / 2


def text_soft_targets(text: torch.Tensor, weight: float, temperature: float, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Targets ``(1 - w) I + w softmax(T T^T / t)`` from the frozen text vectors ``T`` of a batch.

    Products whose texts are near-duplicates (same type, colour, audience) are then partly
    positives instead of hard negatives, in the spirit of soft-label CLIP variants (e.g. Gao et
    al., "SoftCLIP", AAAI 2024). Masked group pairs get zero weight.
    """
    sims = (text @ text.T) / temperature
    if groups is not None:
        same = groups[:, None] == groups[None, :]
        same.fill_diagonal_(False)
        sims = sims.masked_fill(same, float("-inf"))
    eye = torch.eye(text.shape[0], device=text.device)
    return (1 - weight) * eye + weight * torch.softmax(sims, dim=1)


@contextlib.contextmanager
def _deterministic(seed: int, device: torch.device) -> Iterator[None]:
    """Seeded, deterministic torch ops inside the block; the caller's RNG, flags and threads are restored."""
    previous, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        if device.type == "cpu":
            torch.set_num_threads(CPU_TRAIN_THREADS)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous)
            torch.set_num_threads(threads)


def _check_pairs(
    text_vectors: np.ndarray, image_features: np.ndarray, group_ids: Sequence[str] | None, text_dim: int, image_dim: int,
) -> tuple[np.ndarray, np.ndarray]:
    text = np.ascontiguousarray(text_vectors, dtype=np.float32)
    image = np.ascontiguousarray(image_features, dtype=np.float32)
    if text.ndim != 2 or text.shape[1] != text_dim:
        raise ValueError(f"text_vectors must have shape (n, {text_dim}); got {text.shape}")
    if image.ndim != 2 or image.shape[1] != image_dim:
        raise ValueError(f"image_features must have shape (n, {image_dim}); got {image.shape}")
    if text.shape[0] != image.shape[0]:
        raise ValueError(f"{text.shape[0]} text vectors but {image.shape[0]} image features; they must pair up row by row")
    if text.shape[0] < 2:
        raise ValueError(f"Training needs at least 2 (text, photo) pairs; got {text.shape[0]}")
    if group_ids is not None and len(group_ids) != text.shape[0]:
        raise ValueError(f"group_ids has {len(group_ids)} entries for {text.shape[0]} pairs")
    if not (np.isfinite(text).all() and np.isfinite(image).all()):
        raise ValueError("Training features contain NaN or infinite values")
    return text, image


def train_fusion_head(
    text_vectors: np.ndarray,
    image_features: np.ndarray,
    *,
    group_ids: Sequence[str] | None = None,
    dim: int = DEFAULT_DIM,
    kind: str = "linear",
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    soft_weight: float = DEFAULT_SOFT_WEIGHT,
    soft_temperature: float = DEFAULT_SOFT_TEMPERATURE,
    dropout: float = DEFAULT_DROPOUT,
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[int, float], None] | None = None,
    text_dim: int | None = None,
    image_dim: int | None = None,
    image_views: np.ndarray | None = None,
) -> TrainedSpace:
    """Train a fusion head on (text, photo) pairs of one product each, encoders frozen.

    AdamW with a linear warm-up over the first epoch and cosine decay to zero; weight decay on
    the projection matrices only. Deterministic for a given seed on CPU.

    Args:
        text_vectors: ``(n, text_dim)`` text-encoder vectors of the products' document texts.
        image_features: ``(n, image_dim)`` image-encoder features of the same products' photos.
        group_ids: ``n`` labels; pairs with equal labels (e.g. identical titles) are never
            treated as negatives of each other.
        dim: dimension of the shared space.
        kind: ``"linear"`` or ``"mlp"`` (see :class:`Projection`).
        epochs, batch_size, lr, weight_decay: optimisation settings (the last short batch of an
            epoch is dropped; ``batch_size`` is capped at ``n``).
        soft_weight, soft_temperature: soft targets from text-text similarity (see
            :func:`text_soft_targets`); ``soft_weight=0`` is plain InfoNCE.
        dropout: input dropout on both sides while training (a regulariser; off at inference).
        seed: seeds initialisation and shuffling.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (default: ``ENCODER_DEVICE``, else auto).
        progress: called after each epoch with (epoch number from 1, mean training loss).
        text_dim, image_dim: the encoders' widths (default: the default encoders', MiniLM 384 and
            EfficientNet-Lite0 1280).
        image_views: ``(n, image_dim)`` features of an augmented view of each photo (random crop,
            flip, small rotation: ``mlmodels.image_views.random_view``), or ``None``. Every epoch
            each pair trains on its photo or its view, with equal odds (``FUSION_TRAIN_AUGMENT``).

    Returns:
        The trained space (on CPU, in eval mode).

    Raises:
        ValueError: bad shapes, fewer than 2 pairs, non-finite values, an unknown ``kind``, or
            out-of-range settings.
    """
    text_dim = text_dim or encoder_spec(DEFAULT_TEXT_ENCODER).dim
    image_dim = image_dim or encoder_spec(DEFAULT_IMAGE_ENCODER).dim
    text, image = _check_pairs(text_vectors, image_features, group_ids, text_dim, image_dim)
    if kind not in HEAD_KINDS:
        raise ValueError(f"Unknown head kind {kind!r}; valid kinds: {', '.join(HEAD_KINDS)}")
    if dim < 1 or epochs < 1 or batch_size < 2:
        raise ValueError(f"dim and epochs must be >= 1 and batch_size >= 2; got dim={dim}, epochs={epochs}, batch_size={batch_size}")
    if not (0 <= dropout < 1 and 0 <= soft_weight <= 1 and soft_temperature > 0 and lr > 0 and weight_decay >= 0):
        raise ValueError("Need 0 <= dropout < 1, 0 <= soft_weight <= 1, soft_temperature > 0, lr > 0, weight_decay >= 0")
    n = text.shape[0]
    batch_size = min(batch_size, n)
    params = {"dim": dim, "kind": kind, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "soft_weight": soft_weight, "soft_temperature": soft_temperature,
              "dropout": dropout, "seed": seed, "n_pairs": n}
    data_hash = data_fingerprint(text, image, group_ids)
    dev = select_device(device)
    codes = None
    if group_ids is not None:
        _, inverse = np.unique(np.asarray(list(map(str, group_ids))), return_inverse=True)
        codes = torch.from_numpy(inverse.astype(np.int64)).to(dev)

    with _deterministic(seed, dev):
        head = FusionHead(dim, kind, text_dim, image_dim, dropout=dropout)
        head.text.mean.copy_(torch.from_numpy(text.mean(axis=0)))
        head.image.mean.copy_(torch.from_numpy(image.mean(axis=0)))
        head.to(dev).train()
        t_all, i_all = torch.from_numpy(text).to(dev), torch.from_numpy(image).to(dev)
        v_all = None
        if image_views is not None:
            if np.shape(image_views) != image.shape:
                raise ValueError(f"image_views must have the photos' shape {image.shape}, got {np.shape(image_views)}")
            v_all = torch.from_numpy(np.ascontiguousarray(image_views, dtype=np.float32)).to(dev)
        decay = [p for name, p in head.named_parameters() if name.endswith("weight") and p.ndim == 2]
        rest = [p for name, p in head.named_parameters() if not (name.endswith("weight") and p.ndim == 2)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr)
        steps_per_epoch = n // batch_size  # the last short batch is dropped (too few negatives)
        total = epochs * steps_per_epoch
        warmup = steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))
        )
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n, generator=gen).to(dev)
            i_epoch = i_all if v_all is None else torch.where((torch.rand(n, generator=gen) < 0.5).to(dev)[:, None], v_all, i_all)
            losses = []
            for step in range(steps_per_epoch):
                idx = order[step * batch_size:(step + 1) * batch_size]
                g = None if codes is None else codes[idx]
                soft = text_soft_targets(t_all[idx], soft_weight, soft_temperature, g) if soft_weight > 0 else None
                loss = contrastive_loss(head.text(t_all[idx]), head.image(i_epoch[idx]), head.logit_scale, g, soft)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    head.logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)
                losses.append(float(loss.detach()))
            if progress is not None:
                progress(epoch, float(np.mean(losses)))
    return TrainedSpace(head.eval(), params=params, data_hash=data_hash)
