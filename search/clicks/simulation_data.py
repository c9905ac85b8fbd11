"""The judged data the click simulation runs on: CrowdFlower products and gains, Grocery shoppers' photos.

:func:`read_crowdflower` reads the judged catalog, :func:`catalog_load` / :func:`catalog_reuse`
put it in the database and the index with the real services, :func:`ndcg_at_10` judges a
ranking against it; :func:`grocery_photos` and :func:`photo_features` supply the photo
queries. See :mod:`search.clicks.simulation`.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.cache import cache

from mlmodels.images import open_image
from mlmodels.types import ImageFeatures
from search.backends import get_backend
from search.clicks.models import ClickStat, EventDiscard, PhotoReference, SearchImpression
from search.embedding.encoders import image_encoder, image_spec
from search.services import products_index
from shop.models import Product
from shop.signals import indexing_deferred
from shop.state import state_cache


@dataclass
class JudgedCatalog:
    products: list[tuple[str, str]]  # (title, description), index = catalog number
    gains: dict[str, dict[int, int]]  # query -> catalog number -> gain 0..3


def read_crowdflower(path: Path) -> JudgedCatalog:
    """Judged products (deduplicated on title + description) and gains ``round(mean(median_relevance)) - 1``."""
    index: dict[tuple[str, str], int] = {}
    raw: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    with path.open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            key = (rec["product_title"].strip()[:500], rec["product_description"].strip())
            n = index.setdefault(key, len(index))
            raw[rec["query"].strip()][n].append(int(rec["median_relevance"]))
    gains = {q: {n: int(round(sum(v) / len(v))) - 1 for n, v in judged.items()} for q, judged in raw.items()}
    return JudgedCatalog(products=list(index), gains=gains)


def catalog_load(catalog: JudgedCatalog, log: Callable[[str], None]) -> list[int]:
    """Create the judged products (text only) and index them with the real services; returns product ids by catalog number."""
    with indexing_deferred():
        rows = Product.objects.bulk_create(
            [Product(external_id=f"crowdflower-{n}", title=t or "(untitled)", description=d) for n, (t, d) in enumerate(catalog.products)],
            batch_size=1000,
        )
    ids = [p.pk for p in rows]
    started = time.perf_counter()
    for start in range(0, len(ids), 512):
        products_index(product_ids=ids[start:start + 512])
        log(f"  indexed {min(start + 512, len(ids))}/{len(ids)} products ({time.perf_counter() - started:.0f} s)")
    return ids


def catalog_reuse(catalog: JudgedCatalog) -> list[int] | None:
    """Product ids of a catalog loaded by an earlier run in the same ``VAR_DIR``, with every event and other product removed."""
    known = dict(Product.objects.filter(external_id__startswith="crowdflower-").values_list("external_id", "pk"))
    if len(known) != len(catalog.products):
        return None
    Product.objects.exclude(external_id__startswith="crowdflower-").delete()  # the earlier run's grocery products
    for model in (PhotoReference, SearchImpression, ClickStat, EventDiscard):
        model.objects.all().delete()
    cache.clear()
    state_cache().clear()  # the click guards' rate-limit counters of the earlier run
    ids = [known[f"crowdflower-{n}"] for n in range(len(catalog.products))]
    if get_backend().count() < len(ids):  # an earlier run stopped during the photo part
        for start in range(0, len(ids), 1024):
            products_index(product_ids=ids[start:start + 1024])
    return ids


def ndcg_at_10(gains: dict[str, dict[int, int]], runs: dict[str, list[int]]) -> float:
    """Mean nDCG@10 (ranx 0.3.21, linear gains) of ranked product ids against judged gains."""
    from ranx import Qrels, Run, evaluate  # ranx compiles with numba on import (seconds)

    queries = [q for q in runs if q in gains]
    if not queries:
        return 0.0
    qrels = Qrels({q: {str(pid): int(g) for pid, g in gains[q].items()} for q in queries})
    run = Run({q: ({str(pid): float(len(ids) - i) for i, pid in enumerate(ids)} or {"none": 0.0}) for q, ids in ((q, runs[q]) for q in queries)})
    return float(evaluate(qrels, run, "ndcg@10"))


def grocery_photos(folder: Path, listing: str) -> list[tuple[Path, int]]:
    """(photo path, class id) of each line of a Grocery Store listing (``train.txt``, ``val.txt``)."""
    out = []
    for line in (folder / listing).read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[1].isdigit():
            out.append((folder / parts[0], int(parts[1])))
    return out


def photo_features(paths: list[Path], name: str):
    """Features of shoppers' photos by ``IMAGE_ENCODER``; kept in ``VAR_DIR`` (named by the encoder) so a run with
    ``--var-dir`` encodes them once."""
    spec = image_spec()
    cached = Path(settings.VAR_DIR) / f"simulation-{name}-{spec.name}-features.npz"
    if cached.is_file():
        with np.load(cached) as data:
            if data["features"].shape == (len(paths), spec.dim):
                return ImageFeatures(data["features"], data["logits"])
    images = [open_image(p.read_bytes(), max_bytes=settings.MAX_IMAGE_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS).image for p in paths]
    feats = image_encoder().encode(images)
    np.savez(cached, features=feats.features, logits=feats.logits)
    return feats
