"""Which systems an evaluation reports for each data set, and scores per group of queries.

A system is one retriever's list or a blend of the lists (:class:`SystemSpec`); the harness in
:mod:`search.evaluation.systems` ranks every query once per fusion space and scores each system.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from mlmodels.fusion import FusionSpace
from search.evaluation.datasets import TEXT_DATASETS
from search.evaluation.judged import Dataset
from search.evaluation.metrics import evaluate_run
from search.hybrid.retrievers import BM25, BM25_TRANSLATED, FUSED_KNN, IMAGE_KNN, TEXT_E5_KNN, TEXT_KNN, blend_weights

#: The kNN floors before the match cut-off (``hybrid_no_cutoff``).
PREVIOUS_FLOORS = {"text": 0.5, "fused": 0.5}
#: The kNN-only gates off (``SEARCH_EXACT_ENOUGH`` 0, no ``SEARCH_KNN_ONLY_MIN_COSINE``).
NO_KNN_ONLY_GATES = {"exact_enough": 0, "knn_only_min_cosine": {}}
#: The plain RRF references: no exact-match boost and no kNN-only gates (they stay what they were).
PLAIN = {"exact_boost": 0.0, **NO_KNN_ONLY_GATES}
#: multilingual-e5-small's registry name: its own systems are reported while it is in service.
E5_ENCODER = "e5-small"
#: The metric reported per group of queries (per language on the multilingual set).
GROUP_METRIC = "precision@10"


@dataclass
class SystemSpec:
    """How one system ranks: a single retriever's list, or a blend of the lists in one space.

    Attributes:
        name: e.g. ``bm25``, ``hybrid``.
        space: key of the fusion space whose rankings it reads.
        retriever: the retriever whose list is the ranking (single-list systems).
        blend: ``{"method", "weights", "rrf_k"}`` passed to ``rankings_blend`` (blend systems);
            ``{}`` is the storefront's settings.
        about: one line for the report.
    """

    name: str
    space: str
    retriever: str | None = None
    blend: dict | None = None
    about: str = ""


def system_specs(dataset: str, spaces: dict[str, FusionSpace], service_key: str) -> list[SystemSpec]:
    """The systems compared on ``dataset``, given the spaces available."""
    has_head = "fusion" in spaces
    e5_in_service = E5_ENCODER in settings.ADDITIONAL_TEXT_ENCODERS
    if dataset in TEXT_DATASETS:
        specs = [
            SystemSpec("bm25", service_key, retriever=BM25, about="BM25 alone (tantivy, SEARCH_FIELD_BOOSTS)"),
            SystemSpec("text_knn", service_key, retriever=TEXT_KNN, about="kNN on the MiniLM text vector alone"),
            SystemSpec("fused_knn", service_key, retriever=FUSED_KNN, about=f"kNN on the fused vector alone ({spaces[service_key].name} space)"),
            SystemSpec("rrf_bm25_text", service_key, blend={"method": "rrf", "rrf_k": 60, "weights": _only(BM25, TEXT_KNN), **PLAIN},
                       about="plain RRF (k=60, equal weights) of BM25 and text kNN: the reference"),
            SystemSpec("hybrid", service_key, blend={}, about="the storefront's text ranking (settings SEARCH_FUSION/WEIGHTS/RRF_K)"),
            SystemSpec("hybrid_no_cutoff", service_key, blend={"min_coverage": 0.0, "knn_min_ratio": PREVIOUS_FLOORS, **NO_KNN_ONLY_GATES},
                       about="the storefront's text ranking without the match cut-off (every BM25 hit; text/fused kNN floors 0.5)"),
            SystemSpec("hybrid_no_exact", service_key, blend={"exact_boost": 0.0, **NO_KNN_ONLY_GATES},
                       about="the storefront's text ranking without the exact-match boost and the kNN-only gates (the former default)"),
            SystemSpec("hybrid_adaptive", service_key, blend={"adaptive": True},
                       about="the storefront's text ranking with query-adaptive kNN weights (SEARCH_ADAPTIVE_MULTIPLIERS)"),
        ]
        if e5_in_service:  # multilingual-e5-small's field (ADDITIONAL_TEXT_ENCODERS)
            at = [s.name for s in specs].index("hybrid")
            specs[at:at] = [
                SystemSpec("e5_knn", service_key, retriever=TEXT_E5_KNN, about="kNN on the multilingual-e5-small vector alone"),
                SystemSpec("rrf_bm25_e5", service_key, blend={"method": "rrf", "rrf_k": 60, "weights": _only(BM25, TEXT_E5_KNN), **PLAIN},
                           about="plain RRF (k=60, equal weights) of BM25 and e5 kNN"),
                SystemSpec("hybrid_without_e5", service_key, blend={"weights": {TEXT_E5_KNN: 0.0}},
                           about="the storefront's text ranking with the e5 kNN's weight 0 (BM25, MiniLM text kNN, fused kNN)"),
            ]
        if dataset == "multilingual":
            specs.append(SystemSpec("hybrid_same_weights", service_key, blend={"text": ""},
                                    about="the storefront's text ranking with SEARCH_WEIGHTS for every script (no search.hybrid.language rule)"))
            specs[1:1] = [SystemSpec("bm25_translated", service_key, retriever=BM25_TRANSLATED,
                                     about="BM25 over the query's dictionary translation alone (search.translation; none for English)")]
            specs.append(SystemSpec("hybrid_no_translation", service_key, blend={"weights": {BM25_TRANSLATED: 0.0}},
                                    about="the storefront's text ranking without the translated BM25 list (SEARCH_QUERY_TRANSLATION=off)"))
    elif dataset == "grocery":
        specs = [
            SystemSpec("image_knn", service_key, retriever=IMAGE_KNN, about="kNN on EfficientNet photo features alone"),
            SystemSpec("fused", "bridge", retriever=FUSED_KNN, about="photo query into the fused field (bridge space)"),
            SystemSpec("hybrid", service_key, blend={}, about="the storefront's photo ranking (image kNN + fused kNN, settings)"),
        ]
        if has_head:
            specs += [
                SystemSpec("fusion", "fusion", retriever=FUSED_KNN, about="photo query into the fused field (trained head)"),
                SystemSpec("hybrid_fusion", "fusion", blend={"weights": blend_weights(space="fusion", photo=True)},
                           about="the storefront's photo ranking with the trained head in service"),
            ]
    else:
        specs = [
            SystemSpec("bridge", "bridge", retriever=FUSED_KNN, about="text query against photos through the zero-shot bridge"),
        ]
        if has_head:
            specs.append(SystemSpec("fusion", "fusion", retriever=FUSED_KNN, about="text query against photos through the trained head"))
        specs.append(SystemSpec("hybrid", service_key, blend={}, about="the storefront's text ranking (all retrievers, settings)"))
        if has_head:
            specs.append(SystemSpec("hybrid_fusion", "fusion", blend={}, about="the storefront's text ranking with the trained head in service"))
    return specs


def group_scores(ds: Dataset, run: dict[str, list[int]], metric: str = "") -> dict[str, float]:
    """``metric`` (default :data:`GROUP_METRIC`) per group of ``ds.groups`` (``"precision@10 zh"``),
    and each group's ratio to the first group (``"zh/en"``: the multilingual set's target is >= 0.8)."""
    metric = metric or GROUP_METRIC
    order = list(dict.fromkeys(ds.groups.values()))
    out: dict[str, float] = {}
    for group in order:
        qids = {q for q, g in ds.groups.items() if g == group}
        scores = evaluate_run({q: g for q, g in ds.qrels.items() if q in qids}, {q: r for q, r in run.items() if q in qids}, [metric])
        out[f"{metric} {group}"] = scores[metric]
    first = out[f"{metric} {order[0]}"] if order else 0.0
    for group in order[1:]:
        out[f"{group}/{order[0]}"] = out[f"{metric} {group}"] / first if first else 0.0
    return out


def _only(*names: str) -> dict[str, float]:
    return {name: (1.0 if name in names else 0.0) for name in (BM25, BM25_TRANSLATED, TEXT_KNN, FUSED_KNN, IMAGE_KNN, TEXT_E5_KNN)}
