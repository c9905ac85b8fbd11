"""The scale benchmark on a real Elasticsearch cluster: the same catalogs, queries and table.

    ELASTICSEARCH_URL=http://es:9200 python bench/es_scale.py --sizes 100k,1m,10m --json var/bench/es-scale.json

Without ``ELASTICSEARCH_URL`` it prints why it was skipped and exits 0 (no cluster can run on the
development machines). With it, for each size it builds index ``bench-scale-<n>`` through the
project's own Elasticsearch backend (``rebuild``: a new index behind the alias, replicas 0 and
refresh off while bulk loading, then the live settings and the alias swap), with the synthetic
catalog of ``bench/scale.py`` (vectors around real ones, same seed, same exact neighbours), then
runs the same query mix (text, photo, photo+text; BM25 + kNN per retriever + fusion, cached query
vectors, encoding added from its measured cost) and reports build products/s, query p50/p95/p99,
recall@10 against exact search (filtered too), and the index's size and the nodes' memory from
the cluster's own statistics. Shards, replicas and quantisation come from the settings
(``SEARCH_ES_SHARDS``, ``SEARCH_ES_REPLICAS``, ``SEARCH_ES_QUANTIZATION``); run it once per
setting to compare them. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
#: Documents per ``_bulk`` request: Elastic advises a few to a few tens of MB per request; one
#: product with three float vectors is ~25 KB of JSON, so 500 is ~12 MB.
BULK_DOCS = 500


def build(backend, n: int) -> dict:
    from django.conf import settings

    from bench.scale import Truth, filters_for, material, recall_sets
    from bench.synthetic import load_vocabulary, synthetic_batches
    from search.backends.base import SearchDocument

    anchors, qs = material()
    vocab = load_vocabulary(Path(settings.CATALOG_DIR))
    filters = filters_for(vocab)
    truth = Truth(recall_sets(qs))
    engine_s = 0.0
    with backend.rebuild() as builder:
        for b in synthetic_batches(vocab, n, anchors=anchors):
            price = 100.0 + np.arange(len(b.ids)) % 5000
            truth.add(b.ids, b.vectors, {"price": price <= filters["price"]["price_max"],
                                         "category": np.array([bool(c) and c[0] == filters["category"]["category"] for c in b.categories])})
            docs = [SearchDocument(id=int(b.ids[i]), title=b.titles[i], brand=b.brands[i], category_path=b.categories[i],
                                   description=b.descriptions[i], price=float(price[i]), vectors={k: v[i] for k, v in b.vectors.items()})
                    for i in range(len(b.ids))]
            t0 = time.perf_counter()
            for start in range(0, len(docs), BULK_DOCS):
                builder.add_bulk(docs[start:start + BULK_DOCS])
            engine_s += time.perf_counter() - t0
        t0 = time.perf_counter()
    engine_s += time.perf_counter() - t0  # live settings, refresh, alias swap
    return {"engine_s": engine_s, "products_per_s": n / engine_s, "filters": filters,
            "truth": {s: truth.top(s) for s in truth.sets}}


def cluster_facts(backend) -> dict:
    """Index size on disk and the data nodes' heap and off-heap (page cache is the OS's: not reported by the cluster)."""
    client = backend.client
    stats = client.indices.stats(index=backend.read_alias, metric="store,docs")
    nodes = client.nodes.stats(metric="jvm,os,fs")
    return {
        "store_mb": stats["_all"]["total"]["store"]["size_in_bytes"] / 1e6,
        "docs": stats["_all"]["primaries"]["docs"]["count"],
        "nodes": {name: {"heap_used_mb": n["jvm"]["mem"]["heap_used_in_bytes"] / 1e6, "os_used_mb": n["os"]["mem"]["used_in_bytes"] / 1e6}
                  for name, n in ((v.get("name", k), v) for k, v in nodes["nodes"].items())},
    }


def run(n: int) -> dict:
    from django.conf import settings

    from bench.scale import K, material, query_mix, recall, recall_sets, time_mix
    from search.backends.base import SearchFilters
    from search.backends.elasticsearch import ElasticsearchSearchBackend
    from search.selectors import rankings_blend, search_rankings

    anchors, qs = material()
    dims = {"text": anchors.text.shape[1], "image": anchors.image.shape[1], "fused": anchors.fused.shape[1]}
    backend = ElasticsearchSearchBackend({**settings.SEARCH_BACKENDS["default"], "INDEX": f"bench-scale-{n}"}, dims)
    built = build(backend, n)
    latency = time_mix(query_mix(qs), lambda text, v: rankings_blend(search_rankings(backend=backend, text=text, vectors=v)))
    rec = {}
    for s, (field, queries, filt) in recall_sets(qs).items():
        f = SearchFilters(**built["filters"][filt]) if filt else None
        rec[s] = recall([[h.id for h in backend.search_vector(field, q, k=K, filters=f)] for q in queries], [set(t) for t in built["truth"][s]])
    return {"n": n, "build": {k: v for k, v in built.items() if k != "truth"}, "latency": latency, "recall": rec,
            "cluster": cluster_facts(backend), "settings": {k: settings.SEARCH_BACKENDS["default"].get(k) for k in ("SHARDS", "REPLICAS", "QUANTIZATION")}}


def main(argv: list[str] | None = None) -> int:
    from bench.scale import size_of

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100k,1m")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not os.environ.get("ELASTICSEARCH_URL"):
        print("ELASTICSEARCH_URL is not set: the Elasticsearch scale benchmark was skipped (it needs a real cluster; "
              "see docs/scaling.md).")
        return 0
    from bench.scale import setup_django

    setup_django()
    results = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "url_host": os.environ["ELASTICSEARCH_URL"].split("@")[-1],
               "sizes": {}}
    for n in (size_of(s) for s in args.sizes.split(",") if s.strip()):
        r = results["sizes"][str(n)] = run(n)
        print(f"{n:>10,} products: build {r['build']['products_per_s']:.0f}/s; store {r['cluster']['store_mb']:.0f} MB; "
              + "; ".join(f"{kind} p50/p95/p99 {x['engine']['p50']:.1f}/{x['engine']['p95']:.1f}/{x['engine']['p99']:.1f} ms "
                          f"(incl. encoding p95 {x['with_encoding']['p95']:.1f})" for kind, x in r["latency"].items())
              + "; recall@10 " + ", ".join(f"{s} {v:.3f}" for s, v in r["recall"].items()), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
