"""Compile: the one place that says whether a hybrid rule can run inside an engine, exactly.

An engine that declares ``supports_server_fusion`` says which rules it runs
(:class:`~search.backends.retrieval.FusionSupport`). :func:`why_not_compiled` checks a query's
rule and retrievals against that, and :func:`compile_rule` writes the
:class:`~search.backends.retrieval.FusionRequest` the engine runs in one request. A rule the
engine cannot run exactly as :mod:`search.hybrid.pipeline` would is not compiled: the pipeline
then fetches the lists (one round trip with multi-search) and fuses them itself, so a ranking
never depends on where it was computed. Not compiled today:

* a kNN floor (``SEARCH_KNN_MIN_RATIO`` > 0 for a retrieval's field): it decides membership
  after fusing the full lists (:mod:`search.hybrid.floor` says why), which no engine request can;
* the match cut-off (``SEARCH_MATCH_MIN_COVERAGE`` > 0 with BM25 in the query): it reads each
  BM25 hit's term coverage after fusing;
* the exact-match boost (``SEARCH_EXACT_MATCH_BOOST``) and the kNN-only gates
  (``SEARCH_EXACT_ENOUGH``, ``SEARCH_KNN_ONLY_MIN_COSINE``): they read each BM25 hit's term coverage;
* query-adaptive weights (``SEARCH_ADAPTIVE_WEIGHTS``): they read BM25's list before fusing;
* a method the engine lacks, or weighted RRF on an engine that weighs every list 1.0;
* lists the engine does not hold (shoppers' photo references), or fewer than two lists;
* a window over the engine's largest.

A stage added after fusion that needs every retriever's scores (a learned re-ranker) must add
its own reason here, since an engine returns only the fused score.
"""

from __future__ import annotations

from collections.abc import Sequence

from search.backends.retrieval import FusionRequest, FusionSupport, Retrieval, TextRetrieval, VectorRetrieval
from search.hybrid.rule import HybridRule


def why_not_compiled(rule: HybridRule, retrievals: Sequence[Retrieval], support: FusionSupport, *, extra_lists: bool = False) -> str | None:
    """Why ``rule`` over ``retrievals`` cannot run on an engine with ``support`` (``None``: it can).

    Args:
        rule: the query's rule.
        retrievals: the engine retrievals the query calls for.
        support: what the engine runs (``backend.fusion_support()``).
        extra_lists: the query also has lists the engine does not hold (shoppers' photo references).
    """
    active = [r for r in retrievals if rule.weight(r.name) != 0]
    if extra_lists:
        return "the query has lists the engine does not hold (shoppers' photo references)"
    if len(active) < 2:
        return "fewer than two lists to fuse"
    floored = sorted({r.field for r in active if isinstance(r, VectorRetrieval) and rule.knn_min_ratio.get(r.field, 0.0) > 0})
    if floored:
        return f"the kNN floor ({', '.join(floored)}) decides membership after fusing the full lists"
    if rule.min_coverage > 0 and any(isinstance(r, TextRetrieval) for r in active):
        return "the match cut-off reads each BM25 hit's term coverage after fusing the full lists"
    has_text = any(isinstance(r, TextRetrieval) for r in active)
    if rule.exact_boost > 0 and has_text:
        return "the exact-match boost reads each BM25 hit's term coverage after fusing the full lists"
    if has_text and (rule.exact_enough or any(rule.knn_only_min_cosine.values())) and any(isinstance(r, VectorRetrieval) for r in active):
        return "the kNN-only gates read each BM25 hit's term coverage after fusing the full lists"
    if rule.adaptive:
        return "query-adaptive weights read BM25's list before fusing"
    if rule.method not in support.methods:
        return f"the engine does not fuse with {rule.method!r} (it runs: {', '.join(sorted(support.methods)) or 'nothing'})"
    if rule.method == "rrf" and len({rule.weight(r.name) for r in active}) > 1 and not support.weighted_rrf:
        return "the engine weighs every RRF list 1.0 and the rule's weights differ"
    if rule.window > support.max_window:
        return f"the window {rule.window} is over the engine's {support.max_window}"
    return None


def compile_rule(rule: HybridRule, retrievals: Sequence[Retrieval]) -> FusionRequest:
    """``rule`` as one request over the retrievals weighted above 0.

    Call only when :func:`why_not_compiled` returned ``None``.
    """
    active = tuple(r for r in retrievals if rule.weight(r.name) != 0)
    return FusionRequest(
        retrievals=active, method=rule.method, weights={r.name: rule.weight(r.name) for r in active}, rrf_k=rule.rrf_k, window=rule.window,
    )
