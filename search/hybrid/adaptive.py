"""Query-adaptive weights: the dense retrievers' weight per query, from what the lists show (behind a setting).

Between retrieve and fuse: a query whose best BM25 hit holds every one of its terms is one the
words already answer, so the kNN lists count less; one whose best BM25 hit misses a term (a
synonym, a shopper's word the catalog does not use, a typo) leans on meaning, so they count
more; a query with an identifier-like token (a digit in it: a model number, a size) leans on the
words. The idea and its features (identifier tokens, BM25 term coverage, list agreement) follow
OpenSearch's query-adaptive hybrid weights (2024); the rule here is the simplest that the
judged sets supported (README "Relevance, measured").

``SEARCH_ADAPTIVE_WEIGHTS`` turns it on; off, the weights are the rule's as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.conf import settings

from search.backends.base import Hit
from search.hybrid.retrievers import BM25, KNN_FIELDS

#: A token holding a digit among letters, digits and ``-./``: a model number, a SKU, a size.
IDENTIFIER = re.compile(r"^(?=.*\d)[a-z0-9\-./]+$", re.IGNORECASE)


def has_identifier(text: str) -> bool:
    """Whether ``text`` has an identifier-like token (e.g. ``"dv6-6080sf battery"``, ``"32gb"``)."""
    return any(IDENTIFIER.match(token) for token in text.split())


def top_coverage(hits: list[Hit]) -> float | None:
    """The term coverage of BM25's best hit (``Hit.coverage``); ``None`` when BM25 found nothing or the engine reports none."""
    return hits[0].coverage if hits else None


def adaptive_weights(
    text: str, rankings: Mapping[str, list[Hit]], weights: Mapping[str, float], *, multipliers: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """``weights`` with every kNN weight scaled for this query.

    Args:
        text: the query text.
        rankings: retriever -> hits, best first (BM25 hits carry ``coverage``).
        weights: the query's weights (retriever -> weight); BM25 and the click prior are kept.
        multipliers: ``{"covered", "partial", "identifier"}`` -> factor on each kNN weight (default
            ``SEARCH_ADAPTIVE_MULTIPLIERS``): BM25's best hit holds every term / misses one (or BM25
            found nothing) / the query has an identifier-like token (checked first).

    Returns:
        A new weight mapping; the input is unchanged. A query without words (a photo) is unchanged.
    """
    if not text:
        return dict(weights)
    m = multipliers or settings.SEARCH_ADAPTIVE_MULTIPLIERS
    if has_identifier(text):
        factor = m["identifier"]
    else:
        coverage = top_coverage(rankings.get(BM25, []))
        if coverage is None and rankings.get(BM25):
            return dict(weights)  # the engine reports no coverage: nothing to adapt on
        factor = m["covered"] if coverage is not None and coverage >= 1.0 - 1e-9 else m["partial"]
    return {name: (float(w) * factor if name in KNN_FIELDS else float(w)) for name, w in weights.items()}
