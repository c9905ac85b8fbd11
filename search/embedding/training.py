"""Train a fusion head on the catalog's stored embeddings, judge it, save it, activate it.

The catalog's (document text, photo) pairs come from ``ProductEmbedding`` (products without a
photo are skipped), so training re-encodes nothing. A share of the products, grouped by
identical title, is held out; the new head and the zero-shot bridge are scored on it (text ->
photo recall@1, recall@10, nDCG@10 with ranx) and the head is activated only if it beats the
bridge. Activating changes no product: the live index keeps its head until ``manage.py
reindex`` swaps in a build made with the new one (see :mod:`search.embedding.spaces`, :mod:`search.freshness`).

Nothing changes until the very end: the artefact is written to a temporary folder and renamed,
then ``active.json`` is replaced atomically, so an error or an interrupt (Ctrl-C) leaves the
head in service untouched.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from mlmodels import head as fusion_head
from mlmodels import head_artefacts
from mlmodels.crossmodal import holdout_split, paired_judgments, retrieval_metrics
from mlmodels.image_views import random_view
from mlmodels.images import ImageRejected, open_image
from mlmodels.types import ImageFeatures
from search.embedding import encoders, spaces
from search.freshness import products_outside_space
from search.models import ProductEmbedding
from shop.models import Product

#: Ids per ``IN (...)`` query, below SQLite's 32,766 bound variables.
ID_CHUNK = 10_000


class FusionTrainingError(Exception):
    """Training cannot run on this catalog; ``reason`` says why and what to do."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TrainingPairs:
    """Stored embeddings of the products that have a photo, row-aligned.

    Attributes:
        product_ids: ``(n,)`` primary keys.
        text: ``(n, text_dim)`` ``TEXT_ENCODER`` vectors of the document texts (MiniLM: 384).
        image_features: ``(n, image_dim)`` ``IMAGE_ENCODER`` features (EfficientNet-Lite0: 1280).
        groups: ``(n,)`` normalised titles; identical titles are not negatives of each other.
    """

    product_ids: np.ndarray
    text: np.ndarray
    image_features: np.ndarray
    groups: np.ndarray


@dataclass
class TrainReport:
    """What :func:`fusion_head_train` did."""

    version: str
    path: Path
    activated: bool
    decision: str
    metrics: dict
    previous: str
    n_train: int
    n_held_out: int
    train_s: float
    train_cpu_s: float
    stale: int = 0  # products whose fused vectors are not in the new head's space yet (reindex moves them)
    params: dict = field(default_factory=dict)


def training_pairs(*, min_products: int) -> TrainingPairs:
    """Load the catalog's (text, photo) pairs from stored embeddings.

    Raises:
        FusionTrainingError: the catalog is empty, no product has photo features, or fewer
            than ``min_products`` do.
    """
    total = Product.objects.count()
    if total == 0:
        raise FusionTrainingError("The catalog is empty: import products first (`manage.py import_catalog`).")
    rows = list(
        ProductEmbedding.objects.filter(image_features__isnull=False, image_logits__isnull=False)
        .order_by("product_id").values_list("product_id", "product__title", "text_vector", "image_features")
    )
    not_embedded = total - ProductEmbedding.objects.count()
    hint = f" {not_embedded} products have no embeddings yet: run `manage.py reindex` first." if not_embedded else ""
    if not rows:
        raise FusionTrainingError(
            f"None of the {total} products has photo features to train on (products without photos are skipped).{hint}"
        )
    if len(rows) < min_products:
        raise FusionTrainingError(f"catalog too small to train: {len(rows)} products with photos, need >= {min_products}.{hint}")
    unpack = ProductEmbedding.unpack
    return TrainingPairs(
        product_ids=np.array([r[0] for r in rows], np.int64),
        groups=np.array([" ".join(r[1].lower().split()) for r in rows]),
        text=np.stack([unpack(r[2]) for r in rows]),
        image_features=np.stack([unpack(r[3]) for r in rows]),
    )


def image_logits(product_ids: np.ndarray) -> np.ndarray:
    """``(n, 1000)`` stored ImageNet logits of these products, in this order (for the bridge).

    Read only for the held-out products: on a 100k catalog all logits would take 400 MB.
    """
    ids = product_ids.tolist()
    stored: dict[int, bytes] = {}
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ProductEmbedding.objects.filter(product_id__in=ids[start:start + ID_CHUNK])
        stored.update(chunk.values_list("product_id", "image_logits"))
    return np.stack([ProductEmbedding.unpack(stored[int(pid)], np.float16) for pid in product_ids])


logger = logging.getLogger(__name__)


def augmented_views(product_ids: np.ndarray, features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """``(n, image_dim)`` features of one seeded random view (``random_view``) of each product's primary photo,
    for ``FUSION_TRAIN_AUGMENT``. A photo that cannot be read keeps its stored features (counted in the log).
    """
    by_id = {p.pk: p for p in Product.objects.filter(pk__in=product_ids.tolist()).prefetch_related("images")}
    out = np.array(features, np.float32, copy=True)
    rows, views, unreadable = [], [], 0
    for row, pid in enumerate(product_ids.tolist()):
        img = getattr(by_id.get(pid), "primary_image", None)
        try:
            with img.image.open("rb") as fh:
                photo = open_image(fh.read(settings.MAX_IMAGE_BYTES + 1)).image
        except (AttributeError, OSError, ImageRejected):
            unreadable += 1
            continue
        rows.append(row)
        views.append(random_view(photo, random.Random(seed * 1_000_003 + pid)))
    for start in range(0, len(views), 64):
        out[rows[start:start + 64]] = encoders.image_encoder().encode(views[start:start + 64]).features
    if unreadable:
        logger.warning("Augmentation: %d of %d training photos could not be read; they train on their stored features only",
                       unreadable, len(product_ids))
    return out


def held_out_metrics(space, pairs: TrainingPairs, rows: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Text -> photo retrieval among the ``rows`` products (``logits``: theirs): each text must find its own photo."""
    photos = space.image(ImageFeatures(pairs.image_features[rows], logits))
    return retrieval_metrics(space.text(pairs.text[rows]), photos, paired_judgments(pairs.groups[rows]))


def fusion_head_train(
    *,
    epochs: int = fusion_head.DEFAULT_EPOCHS,
    dim: int = fusion_head.DEFAULT_DIM,
    kind: str = "linear",
    holdout: float = 0.2,
    min_products: int | None = None,
    activate: bool = True,
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> TrainReport:
    """Train, judge, save and (if it beats the bridge) activate a fusion head.

    Args:
        epochs, dim, kind, seed, device: passed to :func:`mlmodels.head.train_fusion_head`.
        holdout: share of products (grouped by identical title) held out for the metrics.
        min_products: fewest products with photos to train on (default ``FUSION_MIN_PRODUCTS``).
        activate: activate the head if its held-out nDCG@10 beats the bridge's.
        progress: called after each epoch with (epoch, mean loss).

    Raises:
        FusionTrainingError: too little data (see :func:`training_pairs`) or a bad ``holdout``.
        KeyboardInterrupt: passed through; nothing was saved or changed.
    """
    min_products = settings.FUSION_MIN_PRODUCTS if min_products is None else min_products
    previous = spaces.active_ref().version
    pairs = training_pairs(min_products=min_products)
    try:
        train, held = holdout_split(pairs.groups, holdout, seed=seed)
    except ValueError as exc:
        raise FusionTrainingError(f"Cannot hold out products: {exc}.") from None
    if len(train) < 2:
        raise FusionTrainingError(f"Only {len(train)} products left to train on after holding out {len(held)}; lower --holdout.")

    t0, c0 = time.perf_counter(), time.process_time()
    views = augmented_views(pairs.product_ids[train], pairs.image_features[train], seed=seed) if settings.FUSION_TRAIN_AUGMENT else None
    space = fusion_head.train_fusion_head(
        pairs.text[train], pairs.image_features[train], group_ids=pairs.groups[train],
        dim=dim, kind=kind, epochs=epochs, seed=seed, device=device or settings.ENCODER_DEVICE, progress=progress,
        text_dim=encoders.text_dim(), image_dim=encoders.image_dim(), image_views=views,
    )
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0

    held_logits = image_logits(pairs.product_ids[held])
    head_metrics = held_out_metrics(space, pairs, held, held_logits)
    bridge_metrics = held_out_metrics(spaces.get_space(spaces.bridge_ref().version), pairs, held, held_logits)
    metrics = {
        "held_out": {"n_products": int(len(held)), "share": holdout, "fusion": head_metrics, "bridge": bridge_metrics},
        "n_train": int(len(train)), "train_s": round(train_s, 2), "train_cpu_s": round(train_cpu_s, 2),
    }
    path = head_artefacts.save_artefact(space, spaces.head_dir(), metrics=metrics, data_hash=space.data_hash,
                                        encoders=encoders.encoder_names())

    beats = head_metrics["ndcg@10"] > bridge_metrics["ndcg@10"]
    if not beats:
        decision = (f"not activated: held-out nDCG@10 {head_metrics['ndcg@10']:.3f} does not beat the bridge's "
                    f"{bridge_metrics['ndcg@10']:.3f}; {previous} stays in service")
    elif not activate:
        decision = f"not activated (--no-activate); {previous} stays in service"
    else:
        decision = "activated"
    report = TrainReport(
        version=space.version, path=path, activated=beats and activate, decision=decision, metrics=metrics,
        previous=previous, n_train=int(len(train)), n_held_out=int(len(held)), train_s=train_s,
        train_cpu_s=train_cpu_s, params=space.params,
    )
    if report.activated:
        head_artefacts.write_active(spaces.head_dir(), space.version)
        report.stale = products_outside_space(space.version)
    return report
