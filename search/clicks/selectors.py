"""Reads of click feedback at query time: the click priors of the candidates, and kNN over shoppers' photos.

Neither ever reads the event log: priors come from the aggregated
:class:`~search.clicks.models.ClickStat` table in one query per search, photo references from
a matrix kept in memory and reloaded when :data:`search.clicks.selectors.PHOTO_REFS_GENERATION_KEY` changes.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q

from search.backends.base import Hit
from search.clicks import click_model
from search.clicks.models import ClickStat, PhotoReference
from search.embedding.encoders import image_dim
from shop.models import Product

#: Cache key bumped whenever photo references change (readers reload their matrix).
PHOTO_REFS_GENERATION_KEY = "search:photo-refs-generation"
#: Cache key of the catalogue's mean click prior, written by each aggregates refresh.
PRIOR_MEAN_KEY = "search:click-prior-mean"
#: A process re-reads the generation counter at most this often (s); a cache get, cheap.
REFS_CHECK_INTERVAL_S = 1.0


def prior_config() -> click_model.PriorConfig:
    """The click prior's smoothing and credibility from settings (``CLICK_PRIOR_STRENGTH``, ``CLICK_FULL_CREDIT_SESSIONS``)."""
    return click_model.PriorConfig(strength=settings.CLICK_PRIOR_STRENGTH, full_credit_sessions=settings.CLICK_FULL_CREDIT_SESSIONS)


def click_priors(*, text: str, product_ids: Iterable[int]) -> dict[int, float]:
    """Click prior in [0, 1] of each candidate that has one, in one query.

    A (query, product) score (queries with ``CLICK_QUERY_MIN_SESSIONS`` sessions or more) wins
    over the product's global popularity; products without either are left out (neutral).
    """
    ids = list({int(i) for i in product_ids})
    if not ids:
        return {}
    key = click_model.query_key(text)
    scopes = Q(query=ClickStat.GLOBAL) | Q(query=key) if key else Q(query=ClickStat.GLOBAL)
    rows = ClickStat.objects.filter(scopes, product_id__in=ids).values_list("query", "product_id", "prior")
    out: dict[int, float] = {}
    for query, pid, prior in rows:
        if query or pid not in out:
            out[pid] = prior
    return out


@dataclass
class _RefMatrix:
    generation: object
    product_ids: np.ndarray  # (n,) int64
    vectors: np.ndarray  # (n, image_dim) float32


_refs: _RefMatrix | None = None
_refs_checked = 0.0
_refs_lock = threading.Lock()


def _reference_matrix() -> _RefMatrix:
    global _refs, _refs_checked
    with _refs_lock:
        now = time.monotonic()
        if _refs is not None and now - _refs_checked < REFS_CHECK_INTERVAL_S:
            return _refs
        _refs_checked = now
        generation = cache.get(PHOTO_REFS_GENERATION_KEY, 0)
        if _refs is None or _refs.generation != generation:
            dim = image_dim()
            # References of another width were made by an earlier IMAGE_ENCODER: they cannot be compared.
            found = PhotoReference.objects.values_list("product_id", "vector", "click_id", "click__network_hash", "click__session_hash")
            found = [r for r in found if len(r[1]) == 4 * dim]
            # Shoppers' references of a product count once two networks (sessions where the address is
            # unknown) made them; one made by the shop itself (no click) always counts.
            sources: dict[int, set[str]] = defaultdict(set)
            for pid, _, click, network, session in found:
                sources[pid].add("shop" if click is None else network or f"s:{session}")
            rows = [(p, v) for p, v, *_ in found if len(sources[p]) >= 2 or "shop" in sources[p]]
            vecs = np.frombuffer(b"".join(bytes(v) for _, v in rows), dtype=np.float32).reshape(len(rows), dim)
            _refs = _RefMatrix(generation, np.array([p for p, _ in rows], dtype=np.int64), vecs)
        return _refs


def photo_refs_reset() -> None:
    """Forget the in-memory references (tests, or after bulk changes outside :mod:`search.clicks.services`)."""
    global _refs
    with _refs_lock:
        _refs = None


def photo_refs_search(vector: np.ndarray, *, k: int = 100, allowed: set[int] | None = None) -> list[Hit]:
    """kNN over shoppers' photo references: products ranked by their best reference's cosine similarity.

    Only products whose references come from two networks or more are searched (a reference the
    shop made itself, with no click behind it, always is): one network alone never lifts a product.

    Exact search (a matrix product), fine for the counts references reach (at most
    ``PHOTO_REFS_PER_PRODUCT`` per clicked product).

    Args:
        vector: the query photo's ``(image_dim,)`` L2-normalised image vector (EfficientNet-Lite0: 1280).
        k: most products returned.
        allowed: product ids passing the search's filters (``None``: no filter).

    Raises:
        ValueError: the vector is not as wide as the image encoder's.
    """
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vector.shape != (image_dim(),):
        raise ValueError(f"A photo reference query needs a {image_dim()}-d vector, got {vector.shape[0]}")
    refs = _reference_matrix()
    if not len(refs.product_ids) or k <= 0:
        return []
    sims = refs.vectors @ vector
    best: dict[int, float] = {}
    for pid, sim in zip(refs.product_ids.tolist(), sims.tolist(), strict=True):
        if allowed is not None and pid not in allowed:
            continue
        if sim > best.get(pid, -2.0):
            best[pid] = sim
    ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [Hit(pid, score) for pid, score in ranked]


def photo_refs_ranking(vector: np.ndarray, *, filters=None, k: int = 100) -> list[Hit]:
    """:func:`photo_refs_search` with the search's filters applied (category subtree, brands, price), best first."""
    hits = photo_refs_search(vector, k=k if filters is None or filters.is_empty else 10 * k)
    if not hits or filters is None or filters.is_empty:
        return hits
    qs = Product.objects.filter(pk__in=[h.id for h in hits])
    if filters.category:
        path = " > ".join(filters.category_parts)
        qs = qs.filter(Q(category__path=path) | Q(category__path__startswith=path + " > "))
    if filters.brands:
        qs = qs.filter(brand__name__in=filters.brands)
    if filters.price_min is not None:
        qs = qs.filter(price__gte=filters.price_min)
    if filters.price_max is not None:
        qs = qs.filter(price__lte=filters.price_max)
    passing = set(qs.values_list("pk", flat=True))
    return [h for h in hits if h.id in passing][:k]
