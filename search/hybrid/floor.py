"""The kNN floor: which of a query's kNN hits count as matches (stage 3 of the pipeline, membership).

A kNN returns its ``k`` nearest products however far they are, so without a floor "shirt" lists
routers, and a filter to a small category returns all of it. The floor keeps the kNN hits whose
cosine is at least ``SEARCH_KNN_MIN_RATIO[field]`` x the query's best cosine in the *whole*
catalog, so a filter never admits a product the unfiltered query left out, and a facet's count
is the number of results its filter opens. BM25 hits and shoppers' photo references always count.

The floor decides membership only, after rank fusion over the full lists: it never changes the
order of the products it keeps, nor the min-max normalisation of any list. Measured against
dropping the hits before fusing (which an engine could run on its side with a kNN
``similarity``), nDCG@10 after vs. before, both from the same retrieved lists (paired, 95%
bootstrap CI of before - after): CrowdFlower 0.8234 vs 0.8228 (CI [-0.002, +0.001]),
fashion_text 0.5828 vs 0.5828 (499 of 500 queries equal), Fashion equal; Grocery photos 0.5853
vs 0.5678 with the zero-shot bridge (CI [-0.029, -0.007]: after is better) and 0.8398 vs 0.8491
with a trained head (CI [-0.002, +0.020]: within noise). So the floor stays after fusion, and an
engine fuses a rule itself only when no kNN list is floored (:mod:`search.hybrid.compile`).
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings

from search.backends.base import BaseSearchBackend, Hit
from search.backends.retrieval import VectorRetrieval
from search.embedding.encoding import QueryVectors
from search.hybrid.retrieve import retrieve
from search.hybrid.retrievers import BM25_TRANSLATED, KNN_FIELDS


def matched_ids(
    rankings: Mapping[str, list[Hit]],
    *,
    best: Mapping[str, float] | None = None,
    ratios: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    min_coverage: float | None = None,
) -> set[int]:
    """The products a query matches: the BM25 hits holding at least ``min_coverage`` of the
    query's distinct terms, every hit of BM25 over a translation (its words are a dictionary's
    alternative glosses: "pot pan" for 锅), every photo-reference hit, and the kNN hits whose cosine is at least
    ``ratios[field]`` x the query's best cosine in the catalog.

    Args:
        rankings: retriever -> hits, best first (``search_rankings``).
        best: vector field -> best cosine without filters (:func:`knn_best`, for a filtered query);
            a field missing here uses its own list's first hit, the same thing when unfiltered.
        ratios: vector field -> share of the best cosine (default ``SEARCH_KNN_MIN_RATIO``; 0: no floor).
        weights: retriever -> weight; a list weighted 0 is left out, as in fusion (default: none is).
        min_coverage: share of the query's distinct analysed terms a BM25 hit must hold
            (``Hit.coverage``; default ``SEARCH_MATCH_MIN_COVERAGE``; 0: every hit). A hit whose
            engine reports no coverage (``None``) counts.
    """
    ratios = settings.SEARCH_KNN_MIN_RATIO if ratios is None else ratios
    cut = settings.SEARCH_MATCH_MIN_COVERAGE if min_coverage is None else min_coverage
    matched: set[int] = set()
    for name, hits in rankings.items():
        if weights is not None and float(weights.get(name, 1.0)) == 0:
            continue
        vector_field = KNN_FIELDS.get(name)  # None: BM25 or photo references, every hit matches
        ratio = ratios.get(vector_field, 0.0) if vector_field else 0.0
        top = (best or {}).get(vector_field, hits[0].score if hits else 0.0)
        if name == BM25_TRANSLATED:  # a dictionary's alternative glosses: no product holds them all
            matched.update(h.id for h in hits)
        elif vector_field is None:
            matched.update(h.id for h in hits if cut <= 0 or h.coverage is None or h.coverage >= cut - 1e-9)
        elif ratio <= 0 or top <= 0:
            matched.update(h.id for h in hits)
        else:
            matched.update(h.id for h in hits if h.score >= ratio * top)
    return matched


def knn_best(backend: BaseSearchBackend, vectors: QueryVectors, ratios: Mapping[str, float] | None = None) -> dict[str, float]:
    """The query's best cosine per floored vector field in the whole catalog: one ``k=1`` kNN each,
    no filters, in one round trip where the engine has multi-search.

    Args:
        backend: the engine.
        vectors: the query's vectors.
        ratios: the floor per vector field (default ``SEARCH_KNN_MIN_RATIO``); fields without one are skipped.
    """
    ratios = settings.SEARCH_KNN_MIN_RATIO if ratios is None else ratios
    asked = [VectorRetrieval(name=name, field=f, vector=v, k=1) for name, f in KNN_FIELDS.items()
             if (v := vectors.for_field(f)) is not None and ratios.get(f, 0.0) > 0]
    found = retrieve(backend, asked)
    return {r.field: hits[0].score for r, hits in zip(asked, found, strict=True) if hits}
