"""What a caller asks a search engine for: filters, single retrievals and fusion requests.

Plain values with no engine in them, so that ``search.hybrid`` can describe a query once and
every engine can answer it: :class:`TextRetrieval` (BM25) and :class:`VectorRetrieval` (kNN) for
:meth:`~search.backends.base.BaseSearchBackend.search_many`, and a :class:`FusionRequest` (the
hybrid rule compiled by ``search.hybrid.compile``) for
:meth:`~search.backends.base.BaseSearchBackend.search_fused`. Retriever names travel inside
the requests, so engines never import the registry of names (``search.hybrid.retrievers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SearchFilters:
    """Filters applied inside every retriever (never as a post-filter).

    Attributes:
        category: a category path, root first, joined with ``" > "``; matches the category and
            everything below it.
        brands: brand names; a product matches any of them.
        price_min, price_max: inclusive bounds in the catalog currency (INR).
    """

    category: str | None = None
    brands: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.category or self.brands or self.price_min is not None or self.price_max is not None)

    @property
    def category_parts(self) -> list[str]:
        return [p.strip() for p in (self.category or "").split(" > ") if p.strip()]


@dataclass(frozen=True)
class TextRetrieval:
    """BM25 over the text fields, as :meth:`~search.backends.base.BaseSearchBackend.search_text` runs it.

    Attributes:
        name: the retriever's name (``search.hybrid.retrievers``), e.g. ``"bm25"``.
        query: shopper words (analysed into terms, never parsed as syntax).
        filters: applied inside the retrieval.
        limit: most hits.
    """

    name: str
    query: str
    filters: SearchFilters | None = None
    limit: int = 100


@dataclass(frozen=True, eq=False)
class VectorRetrieval:
    """kNN by cosine on one vector field, as :meth:`~search.backends.base.BaseSearchBackend.search_vector` runs it.

    Attributes:
        name: the retriever's name, e.g. ``"text_knn"``.
        field: the vector field (``text``, ``image``, ``fused``...).
        vector: ``(dim,)`` float32 query vector, L2-normalised.
        filters: applied inside the kNN search (pre-filtering).
        k: most hits.
    """

    name: str
    field: str
    vector: np.ndarray
    filters: SearchFilters | None = None
    k: int = 100


#: One retrieval of a multi-search or a fusion request.
Retrieval = TextRetrieval | VectorRetrieval


@dataclass(frozen=True)
class FusionSupport:
    """Which fusion rules an engine runs in one request (its ``fusion_support()``).

    Attributes:
        methods: rank fusion methods it runs: ``"rrf"`` (Reciprocal Rank Fusion), ``"linear"``
            (weighted sum of min-max normalised scores).
        weighted_rrf: RRF weights other than 1.0 are honoured.
        max_window: the largest per-retriever window (and result count) it accepts.
    """

    methods: frozenset[str] = frozenset()
    weighted_rrf: bool = False
    max_window: int = 10_000


@dataclass(frozen=True)
class FusionRequest:
    """A hybrid rule compiled for an engine that fuses on its side (``search.hybrid.compile``).

    The engine runs every retrieval (each keeping its first ``window`` hits), fuses them with
    ``method`` and ``weights``, and returns the first ``window`` fused results. The same rule,
    run by ``search.hybrid`` over separate lists, gives the same ids in the same order.

    Attributes:
        retrievals: the lists to fuse, each named; every one carries the query's filters.
        method: ``"rrf"``: ``score(d) = sum_r w_r / (rrf_k + rank_r(d))`` (Cormack et al. 2009);
            ``"linear"``: ``score(d) = sum_r w_r * minmax_r(score_r(d))`` (min-max over each list,
            1.0 for every hit of a list whose scores are all equal).
        weights: retrieval name -> weight (> 0; retrievals weighted 0 are never sent).
        rrf_k: the RRF rank constant (> 0).
        window: hits per retrieval and most fused results.
    """

    retrievals: tuple[Retrieval, ...]
    method: str
    weights: Mapping[str, float]
    rrf_k: int = 60
    window: int = 100
