"""The kNN floor: which of a query's kNN hits count as matches.

A kNN returns its ``k`` nearest products however far they are; the floor keeps those whose
cosine is at least ``SEARCH_KNN_MIN_RATIO[field]`` x the query's best cosine in the whole
catalog. It decides membership only, never order.
"""

from __future__ import annotations

from django.conf import settings

from search.backends.base import BaseSearchBackend, Hit
from search.embedding.encoding import QueryVectors
from search.hybrid.retrievers import KNN_FIELDS


def matched_ids(rankings: dict[str, list[Hit]], *, best: dict[str, float] | None = None) -> set[int]:
    """The products a query matches: every BM25 and photo-reference hit, and the kNN hits whose
    cosine is at least ``SEARCH_KNN_MIN_RATIO[field]`` x the query's best cosine in the catalog.

    A kNN returns its ``k`` nearest products however far they are, so without a floor "shirt"
    lists routers, and a filter to a small category returns all of it. The floor is relative to
    the *unfiltered* best match (``best``, from :func:`knn_best`, for a filtered query), so a
    filter never admits a product the unfiltered query left out, and a facet's count is the
    number of results its filter opens. Ranking is untouched: the floor only decides membership.

    Args:
        rankings: retriever -> hits (``search_rankings``).
        best: vector field -> best cosine without filters; missing fields use their list's first hit.
    """
    matched: set[int] = set()
    for name, hits in rankings.items():
        vector_field = KNN_FIELDS.get(name)  # None: BM25 or photo references, every hit matches
        ratio = settings.SEARCH_KNN_MIN_RATIO.get(vector_field, 0.0) if vector_field else 0.0
        top = (best or {}).get(vector_field, hits[0].score if hits else 0.0)
        if ratio <= 0 or top <= 0:
            matched.update(h.id for h in hits)
        else:
            matched.update(h.id for h in hits if h.score >= ratio * top)
    return matched


def knn_best(backend: BaseSearchBackend, vectors: QueryVectors) -> dict[str, float]:
    """The query's best cosine per vector field in the whole catalog (one ``k=1`` kNN each, no filters)."""
    best = {}
    for vector_field, vector in vectors.by_field().items():
        if settings.SEARCH_KNN_MIN_RATIO.get(vector_field, 0.0) > 0:
            hits = backend.search_vector(vector_field, vector, k=1)
            if hits:
                best[vector_field] = hits[0].score
    return best
