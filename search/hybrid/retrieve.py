"""Retrieve: the first stage of the pipeline, a query's lists from the engine.

:func:`query_retrievals` says which retrievals a query calls for (named from
:mod:`search.hybrid.retrievers`); :func:`retrieve` asks the engine for them: in one round trip
when it has multi-search (Elasticsearch's ``_msearch``), else one call each.
"""

from __future__ import annotations

from collections.abc import Sequence

from search.backends.base import BaseSearchBackend, Hit, SearchFilters
from search.backends.retrieval import Retrieval, TextRetrieval, VectorRetrieval
from search.embedding.encoding import QueryVectors
from search.hybrid.retrievers import BM25, FUSED_KNN, IMAGE_KNN, KNN_FIELDS, TEXT_KNN


def query_retrievals(*, text: str, vectors: QueryVectors, filters: SearchFilters | None, window: int) -> list[Retrieval]:
    """The engine retrievals of a words and/or photo query.

    Words run BM25 and a kNN on the text vector; a photo runs a kNN on the image vector; any
    query runs a kNN on the fused vector (when a fusion space matches the live index).

    Args:
        text: cleaned query text ("" for a photo-only query).
        vectors: the query's vectors (``encoding.query_vectors``).
        filters: applied inside every retrieval.
        window: hits per retrieval.
    """
    out: list[Retrieval] = []
    if text:
        out.append(TextRetrieval(name=BM25, query=text, filters=filters, limit=window))
        out.append(VectorRetrieval(name=TEXT_KNN, field=KNN_FIELDS[TEXT_KNN], vector=vectors.text, filters=filters, k=window))
    if vectors.image is not None:
        out.append(VectorRetrieval(name=IMAGE_KNN, field=KNN_FIELDS[IMAGE_KNN], vector=vectors.image, filters=filters, k=window))
    if vectors.fused is not None:  # None: no loadable fusion space matches the live index
        out.append(VectorRetrieval(name=FUSED_KNN, field=KNN_FIELDS[FUSED_KNN], vector=vectors.fused, filters=filters, k=window))
    return out


def retrieve(backend: BaseSearchBackend, retrievals: Sequence[Retrieval]) -> list[list[Hit]]:
    """Each retrieval's hits, best first, in the order asked.

    Raises:
        ValueError: a vector of the wrong dimension, or a bad filter.
        search.backends.base.SearchUnavailable: the engine cannot answer.
    """
    if not retrievals:
        return []
    if backend.supports_multi_search:
        return backend.search_many(retrievals)
    return [
        backend.search_text(r.query, filters=r.filters, limit=r.limit) if isinstance(r, TextRetrieval)
        else backend.search_vector(r.field, r.vector, filters=r.filters, k=r.k)
        for r in retrievals
    ]
