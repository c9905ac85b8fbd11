"""CPU cost per text query of the relevance stages (match cut-off, exact matches, query-adaptive weights, LambdaMART re-rank).

One thread, same run, same queries (CrowdFlower's distinct queries), against the baseline each
stage is added to::

    python bench/relevance_stages.py --products 100000 --queries 300 --markdown stages.md

* **BM25 at scale**: a tantivy index of ``--products`` synthetic products (``bench/synthetic.py``:
  real Flipkart and fashion words recombined); BM25 for ``SEARCH_CANDIDATES`` hits as the
  storefront asks it, without and with the term-coverage search the match cut-off reads
  (:meth:`search.backends._bm25.BM25Index._coverage`). This is the only part of the stages that
  grows with the catalog.
* **After retrieval**, over the same lists (BM25 from that index; three kNN lists of
  ``SEARCH_CANDIDATES`` hits with cosines drawn per query, since fusion cost depends on list
  lengths, not on the catalog): fusion + membership without and with the cut-off, with
  query-adaptive weights, and the LambdaMART re-rank of the first page (features + predict, a
  model of 100 trees of 7 leaves trained on random grades: prediction cost does not depend on
  what it learned).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    from bench import run

    run.setup_django()
    import numpy as np
    from django.conf import settings

    from bench.synthetic import load_vocabulary, synthetic_batches
    from search.backends._bm25 import BM25Index
    from search.backends.base import Hit, SearchDocument
    from search.hybrid.pipeline import rankings_blend
    from search.hybrid.rerank import candidate_features, train_reranker
    from search.lexical import EXACT_PROBE

    window = settings.SEARCH_CANDIDATES
    texts = run.text_queries(args.queries)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        index = BM25Index(Path(tmp) / "bm25", settings.SEARCH_FIELD_BOOSTS, bulk=True)
        started = time.perf_counter()
        for b in synthetic_batches(load_vocabulary(Path(settings.CATALOG_DIR)), args.products):
            index.write([SearchDocument(int(i), title=t, description=d, brand=br, category_path=c)
                         for i, t, d, br, c in zip(b.ids, b.titles, b.descriptions, b.brands, b.categories, strict=True)], [])
        index.finish()
        print(f"indexed {args.products} products in {time.perf_counter() - started:.0f} s", flush=True)
        searcher = index._searcher()
        bm25_plain, bm25_cov, probe, lists = [], [], [], {}
        for text in texts:  # the exact-word check of search.lexical (50 hits with their coverage)
            t0 = time.process_time()
            index.search(text, None, EXACT_PROBE)
            probe.append((time.process_time() - t0) * 1000)
        for text in texts:  # BM25 as asked, then the coverage search alone over its hits
            t0 = time.process_time()
            hits = index.search(text, None, window)
            t1 = time.process_time()
            index._coverage(searcher, list(dict.fromkeys(index.terms(text))), [h.id for h in hits])
            t2 = time.process_time()
            bm25_cov.append((t1 - t0) * 1000)
            bm25_plain.append(((t1 - t0) - (t2 - t1)) * 1000)
            lists[text] = hits
    rng = np.random.default_rng(0)
    rankings = {}
    for text, hits in lists.items():
        r = {"bm25": hits}
        for name in ("text_knn", "fused_knn", "text_e5_knn"):
            ids = rng.choice(args.products, size=window, replace=False) + 1
            cos = np.sort(rng.uniform(0.3, 0.9, size=window))[::-1]
            r[name] = [Hit(int(i), float(c)) for i, c in zip(ids, cos, strict=True)]
        rankings[text] = r
    groups = [(rng.normal(size=(24, 14)).astype(np.float32), rng.integers(0, 4, size=24)) for _ in range(200)]
    model = train_reranker(groups, k=24, label_gain=[0, 1, 3, 7])

    def timed(fn) -> list[float]:
        out = []
        for text in texts:
            t0 = time.process_time()
            fn(text)
            out.append((time.process_time() - t0) * 1000)
        return out

    no_exact = {"exact_boost": 0.0, "exact_enough": 0, "knn_only_min_cosine": {}}
    uncut = {"min_coverage": 0.0, "knn_min_ratio": {"text": 0.5, "fused": 0.5}, **no_exact}
    stages = {
        "BM25, 200 hits (baseline)": bm25_plain,
        "BM25, 200 hits + term coverage (cut-off)": bm25_cov,
        f"BM25, {EXACT_PROBE} hits + term coverage (does a product hold every word?)": probe,
        "fuse + membership, no cut-off (baseline)": timed(lambda t: rankings_blend(rankings[t], text=t, adaptive=False, **uncut)),
        "fuse + membership with the cut-off, no exact-match boost or kNN-only gates": timed(
            lambda t: rankings_blend(rankings[t], text=t, adaptive=False, **no_exact)),
        "fuse + membership with the cut-off, exact-match boost and kNN-only gates (default)": timed(
            lambda t: rankings_blend(rankings[t], text=t, adaptive=False)),
        "fuse + membership, cut-off + adaptive weights": timed(lambda t: rankings_blend(rankings[t], text=t, adaptive=True)),
    }
    fused = {t: rankings_blend(rankings[t], text=t, adaptive=False, **uncut) for t in texts}
    stages["LambdaMART re-rank of the first 24 (features + predict)"] = timed(
        lambda t: model.rerank(fused[t], candidate_features(t, fused[t], rankings=rankings[t], k=24)))
    table = {name: run.percentiles(ms) for name, ms in stages.items()}
    lines = [f"CPU ms per text query, one thread, {len(texts)} queries, BM25 over {args.products:,} synthetic products",
             "", "| stage | p50 | p95 | mean |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {p['p50']:.2f} | {p['p95']:.2f} | {p['mean']:.2f} |" for name, p in table.items()]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
