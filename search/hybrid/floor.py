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

Products found by kNN alone (no *exact match*: a product holding every query term) are gated
further (:func:`matched_ids`): none once a page of exact matches exists (``SEARCH_EXACT_ENOUGH``),
and, while some exist, only those also above an absolute cosine per encoder
(``SEARCH_KNN_ONLY_MIN_COSINE``), because a ratio to the best cosine admits a tail however weak
the best is ("samsung": best MiniLM cosine 0.36, then watches at 0.35).
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings

from search.backends.base import BaseSearchBackend, Hit
from search.backends.retrieval import VectorRetrieval
from search.embedding.encoding import QueryVectors
from search.hybrid.retrieve import retrieve
from search.hybrid.retrievers import BM25, BM25_TRANSLATED, IMAGE_KNN, KNN_FIELDS


def exact_ids(rankings: Mapping[str, list[Hit]], *, known: bool = False) -> set[int]:
    """The query's exact matches among its BM25 hits: those holding every distinct analysed term
    of the query in some text field (``Hit.coverage`` 1). A hit whose engine reports no coverage
    (``None``, Elasticsearch today) counts, as it does for the match cut-off, unless ``known``:
    then such a list has none (what drops a product is never decided on a guess)."""
    hits = rankings.get(BM25, [])
    if known and any(h.coverage is None for h in hits):
        return set()
    return {h.id for h in hits if h.coverage is None or h.coverage >= 1.0 - 1e-9}


def matched_ids(
    rankings: Mapping[str, list[Hit]],
    *,
    best: Mapping[str, float] | None = None,
    ratios: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    min_coverage: float | None = None,
    exact_enough: int | None = None,
    knn_only_min_cosine: Mapping[str, float] | None = None,
    exact_count: int | None = None,
) -> set[int]:
    """The products a query matches: the BM25 hits holding at least ``min_coverage`` of the
    query's distinct terms, every hit of BM25 over a translation (its words are a dictionary's
    alternative glosses: "pot pan" for 锅), every photo-reference hit, and the kNN hits whose cosine is at least
    ``ratios[field]`` x the query's best cosine in the catalog.

    A kNN hit that is no exact match (:func:`exact_ids`) is a *kNN-only* hit. While fewer than
    ``exact_enough`` products are exact matches it is a match under the floors above, and, when
    at least one is, only if its cosine is also at least ``knn_only_min_cosine[field]``; with
    ``exact_enough`` or more, none is (a page of products holding every word needs no weaker
    neighbours). So "samsung" lists the products that say Samsung, not 100 gadgets near the word.

    Args:
        rankings: retriever -> hits, best first (``search_rankings``).
        best: vector field -> best cosine without filters (:func:`knn_best`, for a filtered query);
            a field missing here uses its own list's first hit, the same thing when unfiltered.
        ratios: vector field -> share of the best cosine (default ``SEARCH_KNN_MIN_RATIO``; 0: no floor).
        weights: retriever -> weight; a list weighted 0 is left out, as in fusion (default: none is).
        min_coverage: share of the query's distinct analysed terms a BM25 hit must hold
            (``Hit.coverage``; default ``SEARCH_MATCH_MIN_COVERAGE``; 0: every hit). A hit whose
            engine reports no coverage (``None``) counts.
        exact_enough: exact matches that leave kNN-only hits out (default ``SEARCH_EXACT_ENOUGH``; 0: never).
        knn_only_min_cosine: vector field -> least cosine of a kNN-only match while some product is an
            exact match (default ``SEARCH_KNN_ONLY_MIN_COSINE``; ``{}``: none).
        exact_count: the query's exact matches in the whole catalog, for a filtered query (so a
            filter never admits a product the unfiltered query left out); ``None``: counted in ``rankings``.
            An engine that reports no coverage has no known exact match, so its kNN hits are not gated.
    """
    ratios = settings.SEARCH_KNN_MIN_RATIO if ratios is None else ratios
    cut = settings.SEARCH_MATCH_MIN_COVERAGE if min_coverage is None else min_coverage
    enough = settings.SEARCH_EXACT_ENOUGH if exact_enough is None else exact_enough
    absolute = settings.SEARCH_KNN_ONLY_MIN_COSINE if knn_only_min_cosine is None else knn_only_min_cosine
    exact = exact_ids(rankings, known=True) if weights is None or float(weights.get(BM25, 1.0)) != 0 else set()
    n_exact = len(exact) if exact_count is None else exact_count
    if IMAGE_KNN in rankings:  # a photo query is matched by looks: nothing makes a kNN hit "only" there
        n_exact = 0
    matched: set[int] = set()
    for name, hits in rankings.items():
        if weights is not None and float(weights.get(name, 1.0)) == 0:
            continue
        vector_field = KNN_FIELDS.get(name)  # None: BM25 or photo references, every hit matches
        ratio = ratios.get(vector_field, 0.0) if vector_field else 0.0
        top = (best or {}).get(vector_field, hits[0].score if hits else 0.0)
        if name == BM25_TRANSLATED:  # a dictionary's alternative glosses: no product holds them all
            matched.update(h.id for h in hits)
            continue
        if vector_field is None:
            matched.update(h.id for h in hits if cut <= 0 or h.coverage is None or h.coverage >= cut - 1e-9)
            continue
        floor = ratio * top if ratio > 0 and top > 0 else float("-inf")
        if n_exact <= 0:
            matched.update(h.id for h in hits if h.score >= floor)
        elif not enough or n_exact < enough:
            least = max(floor, absolute.get(vector_field, 0.0) or float("-inf"))
            matched.update(h.id for h in hits if h.id in exact or h.score >= least)
        else:
            matched.update(h.id for h in hits if h.id in exact)
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
