"""Held-out text -> photo retrieval metrics, used to judge a fusion head against the bridge.

Queries are text vectors in a fusion space, the gallery is photo vectors in the same space;
each query's top-``depth`` photos by cosine similarity form a ranx ``Run`` that is scored
against graded judgments (``Qrels``). Metric definitions are ranx's (Bassani, "ranx: A Blazing-
Fast Python Library for Ranking Evaluation and Comparison", ECIR 2022):

* ``recall@k`` here is ranx ``hit_rate@k``: the share of queries with at least one relevant
  photo in the top ``k``, which is what cross-modal retrieval papers report as R@k. With one
  relevant photo per query it equals ranx ``recall@k``.
* ``ndcg@10``: ranx ``ndcg@10`` (linear gains, Järvelin & Kekäläinen 2002).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Photos ranked per query; enough for recall@10 and nDCG@10 with room to spare.
RUN_DEPTH = 100
METRICS = {"recall@1": "hit_rate@1", "recall@10": "hit_rate@10", "ndcg@10": "ndcg@10"}


def holdout_split(groups: Sequence[str], share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (train, held out), keeping every group on one side.

    Groups (e.g. identical titles) are shuffled with ``seed`` and taken until ``share`` of the
    rows is held out, so a held-out product never has a twin in the training set.

    Raises:
        ValueError: ``share`` outside (0, 1), or fewer than 2 groups.
    """
    if not 0 < share < 1:
        raise ValueError(f"The held-out share must be between 0 and 1 (exclusive); got {share}")
    labels = np.asarray([str(g) for g in groups])
    uniq, inverse = np.unique(labels, return_inverse=True)
    if len(uniq) < 2:
        raise ValueError("A held-out split needs at least 2 distinct groups")
    order = np.random.default_rng(seed).permutation(len(uniq))
    sizes = np.bincount(inverse)[order]
    n_hold = max(1, min(len(uniq) - 1, int(np.searchsorted(np.cumsum(sizes), share * len(labels)) + 1)))
    held = np.isin(inverse, order[:n_hold])
    return np.flatnonzero(~held), np.flatnonzero(held)


def top_k(queries: np.ndarray, gallery: np.ndarray, depth: int = RUN_DEPTH) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN: ``(q, d)`` x ``(g, d)`` (both L2-normalised) -> indices and scores ``(q, min(depth, g))``."""
    sims = np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T
    k = min(depth, sims.shape[1])
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    part = np.take_along_axis(sims, idx, axis=1)
    order = np.argsort(-part, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(part, order, axis=1)


def retrieval_metrics(
    queries: np.ndarray,
    gallery: np.ndarray,
    judgments: Sequence[Mapping[int, int]],
    *,
    depth: int = RUN_DEPTH,
) -> dict[str, float]:
    """Score text -> photo retrieval with ranx.

    Args:
        queries: ``(q, d)`` L2-normalised query vectors in the fusion space.
        gallery: ``(g, d)`` L2-normalised photo vectors in the same space.
        judgments: per query, gallery row -> gain (> 0); rows left out are irrelevant.
        depth: photos ranked per query.

    Returns:
        ``{"recall@1", "recall@10", "ndcg@10"}`` (see the module docstring), each in [0, 1].

    Raises:
        ValueError: shapes disagree, or a query has no relevant photo.
    """
    from ranx import Qrels, Run, evaluate  # ranx compiles with numba on import (seconds)

    if len(queries) != len(judgments):
        raise ValueError(f"{len(queries)} queries but {len(judgments)} judgment sets")
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"Queries {queries.shape} and gallery {gallery.shape} must be 2-d with equal widths")
    if any(not j for j in judgments):
        raise ValueError("Every query needs at least one relevant photo")
    idx, scores = top_k(queries, gallery, depth)
    qrels = Qrels({f"q{q}": {f"d{d}": int(g) for d, g in j.items()} for q, j in enumerate(judgments)})
    run = Run({f"q{q}": {f"d{d}": float(s) for d, s in zip(idx[q], scores[q], strict=True)} for q in range(len(judgments))})
    values = evaluate(qrels, run, list(METRICS.values()), make_comparable=True)
    return {name: float(values[ranx_name]) for name, ranx_name in METRICS.items()}


def paired_judgments(groups: Sequence[str]) -> list[dict[int, int]]:
    """Judgments for "a product's own text finds its own photo": row ``i`` is relevant to query ``i``,
    and so is every row of the same group (an identical title cannot tell them apart)."""
    labels = [str(g) for g in groups]
    members: dict[str, list[int]] = {}
    for i, g in enumerate(labels):
        members.setdefault(g, []).append(i)
    return [{j: 1 for j in members[g]} for g in labels]
