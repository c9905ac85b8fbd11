"""Stage 4, re-rank: a LambdaMART model (LightGBM) reorders the first ``k`` matches of a query.

Off unless ``SEARCH_RERANKER_DIR`` names a trained model (README "Relevance, measured": trained on
a shop's own clicks it did not beat the fused ranking on either judged set, so no model ships).
The features are what the pipeline already holds for each of the first ``k`` fused matches, so
re-ranking adds no round trip to the engine:

* the fused score and rank; each retriever's own score and rank (0 / ``window + 1`` when the
  retriever did not return the product); BM25's term coverage of the product (``Hit.coverage``);
* the query's length in words and whether it has an identifier-like token;
* the product's click prior for the query (0.5: none), as the click prior stage reads it.

LambdaMART: Burges, "From RankNet to LambdaRank to LambdaMART: An Overview" (MSR-TR-2010-82);
LightGBM's ``lambdarank`` objective. Training lives in :mod:`search.evaluation.clicks`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from search.backends.base import FusedResult, Hit
from search.hybrid.adaptive import has_identifier
from search.hybrid.retrievers import BM25, FUSED_KNN, TEXT_E5_KNN, TEXT_KNN

#: Retrievers whose score and rank are features (a missing one reads as absent).
FEATURE_RETRIEVERS = (BM25, TEXT_KNN, FUSED_KNN, TEXT_E5_KNN)
FEATURES = (
    "fused_score", "fused_rank",
    *(f"{r}_{what}" for r in FEATURE_RETRIEVERS for what in ("score", "rank")),
    "bm25_coverage", "query_words", "query_identifier", "click_prior",
)
#: Monotone constraints (LightGBM ``monotone_constraints``): a better score or rank in any list, more
#: of the query's terms or a higher click prior never lowers a product. Without them a model trained
#: on click grades of page 1 (where position-corrected grades favour lower positions) promotes the
#: unlabelled second page wholesale.
MONOTONE = {
    "fused_score": 1, "fused_rank": -1, "bm25_coverage": 1, "click_prior": 1,
    **{f"{r}_score": 1 for r in FEATURE_RETRIEVERS}, **{f"{r}_rank": -1 for r in FEATURE_RETRIEVERS},
}
MODEL_FILE = "model.txt"
META_FILE = "meta.json"


class ArtefactError(ValueError):
    """A re-ranker folder is missing its files or was trained on other features."""


def candidate_features(
    text: str, fused: Sequence[FusedResult], *, rankings: Mapping[str, list[Hit]] | None = None,
    priors: Mapping[int, float] | None = None, k: int, window: int = 200,
) -> np.ndarray:
    """Features of the first ``k`` fused matches.

    Args:
        text: the query's words.
        fused: the query's matches, best first (stage 3's output).
        rankings: retriever -> hits (BM25 hits carry ``coverage``); ``None``: coverage reads 0.
        priors: product id -> click prior in [0, 1] (missing: 0.5).
        k: how many matches to featurise.
        window: the rank given to a retriever that did not return the product is ``window + 1``.

    Returns:
        ``(min(k, len(fused)), len(FEATURES))`` float32, rows in ``fused`` order.
    """
    top = list(fused[:k])
    coverage = {h.id: (h.coverage or 0.0) for h in (rankings or {}).get(BM25, [])}
    words, ident = float(len(text.split())), float(has_identifier(text))
    rows = np.zeros((len(top), len(FEATURES)), dtype=np.float32)
    for i, r in enumerate(top):
        parts = {p.retriever: p for p in r.parts}
        row = [r.score, i + 1.0]
        for name in FEATURE_RETRIEVERS:
            p = parts.get(name)
            row += [p.raw, float(p.rank)] if p is not None else [0.0, window + 1.0]
        row += [coverage.get(r.id, 0.0), words, ident, float((priors or {}).get(r.id, 0.5))]
        rows[i] = row
    return rows


@dataclass
class Reranker:
    """A trained LambdaMART model and the ``k`` matches it reorders."""

    booster: object  # lightgbm.Booster
    k: int
    meta: dict = field(default_factory=dict)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Model scores ``(n,)`` of feature rows ``(n, len(FEATURES))``."""
        return np.asarray(self.booster.predict(X, num_threads=1), dtype=np.float64)

    def rerank(self, fused: list[FusedResult], X: np.ndarray) -> list[FusedResult]:
        """``fused`` with its first ``len(X)`` results reordered by the model (ties: fused order); the rest as they are."""
        n = len(X)
        if n < 2:
            return list(fused)
        s = self.scores(X)
        order = sorted(range(n), key=lambda i: (-s[i], i))
        return [fused[i] for i in order] + list(fused[n:])

    def save(self, folder: Path) -> None:
        """Write ``model.txt`` (LightGBM's text format) and ``meta.json`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MODEL_FILE).write_text(self.booster.model_to_string(), encoding="utf-8")
        (folder / META_FILE).write_text(json.dumps({**self.meta, "k": self.k, "features": list(FEATURES)}, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Reranker:
        """Read a folder written by :meth:`save`.

        Raises:
            ArtefactError: a file is missing or the model was trained on other features.
        """
        import lightgbm as lgb

        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            text = (folder / MODEL_FILE).read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:
            raise ArtefactError(f"{folder} holds no readable re-ranker ({exc})") from exc
        if tuple(meta.get("features", ())) != FEATURES:
            raise ArtefactError(f"{folder} was trained on other features; retrain it")
        return cls(lgb.Booster(model_str=text), int(meta["k"]), meta)


@dataclass(frozen=True)
class RankerConfig:
    """LightGBM parameters: small trees, few rounds, for a few hundred queries (not tuned on a judged set)."""

    n_estimators: int = 100
    learning_rate: float = 0.05
    num_leaves: int = 7
    min_data_in_leaf: int = 50
    truncation_level: int = 24  # pairs swapped within the first page (SEARCH_PAGE_SIZE)
    seed: int = 0

    def params(self, label_gain: Sequence[float]) -> dict:
        return {
            "objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "label_gain": list(label_gain),
            "learning_rate": self.learning_rate, "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
            "lambdarank_truncation_level": self.truncation_level, "seed": self.seed, "deterministic": True,
            "force_row_wise": True, "num_threads": 1, "verbose": -1,
            "monotone_constraints": [MONOTONE.get(f, 0) for f in FEATURES], "monotone_constraints_method": "advanced",
        }


def train_reranker(
    groups: Sequence[tuple[np.ndarray, np.ndarray]], *, k: int, label_gain: Sequence[float], config: RankerConfig = RankerConfig(),
    meta: dict | None = None,
) -> Reranker:
    """LambdaMART on one ``(X (n_q, len(FEATURES)), grades (n_q,) int)`` group per query.

    Raises:
        ValueError: no group has two different grades (nothing to learn).
    """
    import lightgbm as lgb

    groups = [(X, y) for X, y in groups if len(y) > 1 and len(set(y.tolist())) > 1]
    if not groups:
        raise ValueError("No query has two different grades: nothing to learn from")
    X = np.vstack([g[0] for g in groups])
    y = np.concatenate([g[1] for g in groups]).astype(np.int32)
    data = lgb.Dataset(X, y, group=[len(g[1]) for g in groups], feature_name=list(FEATURES), free_raw_data=True)
    booster = lgb.train(config.params(label_gain), data, num_boost_round=config.n_estimators)
    return Reranker(booster, k, {**(meta or {}), "queries": len(groups), "rows": int(len(y)), "label_gain": list(label_gain)})


@lru_cache(maxsize=4)
def load_reranker(folder: str) -> Reranker:
    """The re-ranker in ``folder``, loaded once per process (``SEARCH_RERANKER_DIR``)."""
    return Reranker.load(Path(folder))
