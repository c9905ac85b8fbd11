"""Retrieve: the first stage of the pipeline, a query's lists from the engine.

:func:`query_retrievals` says which retrievals a query calls for (named from
:mod:`search.hybrid.retrievers`); :func:`retrieve` asks the engine for them: in one round trip
when it has multi-search (Elasticsearch's ``_msearch``), else one call each.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from search.backends.base import BaseSearchBackend, Hit, SearchFilters
from search.backends.retrieval import Retrieval, TextRetrieval, VectorRetrieval
from search.embedding.encoding import QueryVectors
from search.hybrid.retrievers import BM25, BM25_TRANSLATED, KNN_FIELDS


def query_retrievals(*, text: str, vectors: QueryVectors, filters: SearchFilters | None, window: int,
                     served: Collection[str] | None = None, translated: str = "") -> list[Retrieval]:
    """The engine retrievals of a words and/or photo query, named from the registry.

    Words run BM25; every kNN retriever of :data:`~search.hybrid.retrievers.KNN_FIELDS` runs when
    the query has a vector for its field: the text vector with words, the image vector with a
    photo, the fused vector for any query (when a fusion space matches the live index). A new kNN
    retriever is one entry there (and its query vector in ``QueryVectors``).

    Args:
        text: cleaned query text ("" for a photo-only query).
        vectors: the query's vectors (``encoding.query_vectors``).
        filters: applied inside every retrieval.
        window: hits per retrieval.
        served: the vector fields the index can search (``backend.served_vector_fields()``);
            a kNN retriever of another field is left out. ``None``: every field.
        translated: the English words of the query's dictionary translation
            (:func:`search.translation.translate_query`), searched as ``bm25_translated``; "" for none.

    Returns:
        BM25 first (with words), then BM25 over the translation (when there is one), then the
        kNN retrievals in registry order.
    """
    out: list[Retrieval] = [TextRetrieval(name=BM25, query=text, filters=filters, limit=window)] if text else []
    if text and translated:
        out.append(TextRetrieval(name=BM25_TRANSLATED, query=translated, filters=filters, limit=window))
    for name, vector_field in KNN_FIELDS.items():
        vector = vectors.for_field(vector_field)
        if vector is not None and (served is None or vector_field in served):
            out.append(VectorRetrieval(name=name, field=vector_field, vector=vector, filters=filters, k=window))
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
