"""How well a system's result set (every match, not only its top 10) covers the relevant products.

The storefront's result count, facets and every sort order run over a query's matches
(:mod:`search.hybrid.floor`), so the matches themselves are judged: per query, precision = the
share of matches that are relevant, recall = the share of relevant products that are matches
(relevant: gain >= ``min_gain``), then the mean over the queries with a relevant product; with the
median number of matches. An empty result set claims nothing: its precision counts as 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Relevant for the result set: CrowdFlower median relevance >= 3 of 4; fashion_text right type and gender.
MIN_GAIN = 2.0


def match_quality(
    qrels: Mapping[str, Mapping[int, float]], matches: Mapping[str, Sequence[int]], *, min_gain: float = MIN_GAIN,
) -> dict[str, float]:
    """Mean precision, recall and F1 of the match sets, and the median match count.

    Args:
        qrels: query id -> product id -> gain.
        matches: query id -> every product the query matches (any order).
        min_gain: the least gain that counts as relevant.

    Returns:
        ``{"match_precision", "match_recall", "match_f1", "match_count_median", "n_queries"}``;
        zeros when no query has a relevant product.
    """
    precision, recall, f1, counts = [], [], [], []
    for qid, ids in matches.items():
        counts.append(len(ids))
        relevant = {pid for pid, g in qrels.get(qid, {}).items() if g >= min_gain}
        if not relevant:
            continue
        hit = len(relevant & set(ids))
        p = hit / len(ids) if ids else 1.0
        r = hit / len(relevant)
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    if not precision:
        return {"match_precision": 0.0, "match_recall": 0.0, "match_f1": 0.0, "match_count_median": 0.0, "n_queries": 0}
    return {"match_precision": float(np.mean(precision)), "match_recall": float(np.mean(recall)), "match_f1": float(np.mean(f1)),
            "match_count_median": float(np.median(counts)), "n_queries": len(precision)}
