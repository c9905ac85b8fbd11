"""One text query, end to end, at 100k products: every encoder and every ranking stage, as the storefront runs it.

    python bench/text_query.py --products 100000 --queries 200 --markdown var/bench/text-query.md

What a shopper's text query costs before the page is drawn, on an index of ``--products``
synthetic products (``bench/synthetic.py``: real words recombined, vectors drawn around real
ones) with the four vector fields the default configuration serves: ``text`` (MiniLM),
``text_e5`` (multilingual-e5-small, ``ADDITIONAL_TEXT_ENCODERS``), ``image`` and ``fused``. The
``text_e5`` vectors are drawn like the others (``w * a + (1 - w) * b + noise``) around real e5
vectors of a sample of the anchor products, encoded here once and cached under ``VAR_DIR``.

Per query, one thread, in this order (``search.selectors.product_search`` without the database
parts: facet counts and loading the page's rows):

* **lexical plan**: typo correction and identifier lookup (``search.lexical.lexical_plan``);
* **encode**: MiniLM and e5 query encoding (real encoders, per-process query cache cleared);
* **rank**: weights and best cosines, BM25 + three kNN retrievers, fusion, kNN floor and match
  cut-off, re-rank, click prior (``search.hybrid.pipeline``), the plan applied.

The baseline in the same run is BM25 alone (``search_text`` for ``SEARCH_CANDIDATES`` hits), so
the ratio says what the whole hybrid costs beside plain keywords on the same machine and load.
The queries are CrowdFlower's distinct queries. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
#: Anchor products given real e5 vectors (a seeded sample: e5 encodes a document in ~0.1 s of CPU).
E5_ANCHORS = 800


def e5_anchors(catalog_dir: Path, cache_dir: Path) -> np.ndarray:
    """``(E5_ANCHORS, 384)`` float32, L2-normalised: e5 document vectors of a seeded sample of the anchor products."""
    from bench.anchors import SEED, _anchor_rows
    from search.embedding import encoders

    spec = encoders.additional_text_specs()[0]
    path = cache_dir / f"anchors-e5-{spec.name}-{E5_ANCHORS}-{SEED}.npy"
    if path.exists():
        return np.load(path)
    rows = _anchor_rows(catalog_dir)
    pick = np.random.default_rng(SEED).choice(len(rows), min(E5_ANCHORS, len(rows)), replace=False)
    vectors = encoders.additional_text_encoder(spec).encode_document([rows[i][0] for i in sorted(pick)]).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def build(n: int, folder: Path) -> dict:
    """Build (or reuse) the index in ``folder``; returns its build record."""
    from django.conf import settings

    from bench.scale import material
    from bench.synthetic import NOISE, SEED, load_vocabulary, synthetic_batches
    from search.backends.base import SearchDocument
    from search.backends.embedded import EmbeddedSearchBackend

    record_file = folder / "build.json"
    if record_file.exists() and (folder / "products").exists():
        return json.loads(record_file.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    anchors, _ = material()
    e5 = e5_anchors(Path(settings.CATALOG_DIR), Path(settings.VAR_DIR) / "real-vectors")
    vocab = load_vocabulary(Path(settings.CATALOG_DIR))
    dims = {"text": anchors.text.shape[1], "image": anchors.image.shape[1], "fused": anchors.fused.shape[1], "text_e5": e5.shape[1]}
    rng = np.random.default_rng(SEED + 1)
    t0, c0 = time.perf_counter(), time.process_time()
    writer = EmbeddedSearchBackend(params(folder), dims)
    with writer.rebuild(size_hint=n) as builder:
        for b in synthetic_batches(vocab, n, anchors=anchors):
            m = len(b.ids)
            a, z = rng.integers(len(e5), size=(2, m))
            w = rng.uniform(0.5, 1.0, size=(m, 1)).astype(np.float32)
            v = w * e5[a] + (1 - w) * e5[z] + rng.standard_normal((m, e5.shape[1]), dtype=np.float32) * (NOISE / np.sqrt(e5.shape[1]))
            b.vectors["text_e5"] = v / np.linalg.norm(v, axis=1, keepdims=True)
            builder.add_bulk([
                SearchDocument(id=int(b.ids[i]), title=b.titles[i], brand=b.brands[i], category_path=b.categories[i],
                               description=b.descriptions[i], price=100.0 + int(b.ids[i]) % 5000,
                               vectors={k: vec[i] for k, vec in b.vectors.items()})
                for i in range(m)
            ])
    record = {"n": n, "fields": dims, "build_s": time.perf_counter() - t0, "build_cpu_s": time.process_time() - c0}
    record_file.write_text(json.dumps(record))
    return record


def params(folder: Path) -> dict:
    from django.conf import settings

    return {"INDEX_DIR": folder, "INDEX": "products", "FIELD_BOOSTS": settings.SEARCH_FIELD_BOOSTS}


def queries(catalog_dir: Path, limit: int) -> list[str]:
    """CrowdFlower's distinct queries, in file order."""
    seen: dict[str, None] = {}
    with (catalog_dir / "crowdflower" / "train.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            seen.setdefault(rec["query"].strip(), None)
    return list(seen)[:limit]


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000


def run(folder: Path, texts: list[str], warm: list[str]) -> dict:
    """Stage -> wall ms per query (and CPU ms of the whole query), plus the BM25-only baseline."""
    from django.conf import settings

    from search.backends.base import SearchFilters
    from search.backends.embedded import EmbeddedSearchBackend
    from search.embedding import encoding
    from search.hybrid.pipeline import click_prior_apply, hybrid_query, ranked_matches
    from search.hybrid.retrievers import TEXT_KNN
    from search.lexical import lexical_plan, plan_apply

    record = json.loads((folder / "build.json").read_text())
    backend = EmbeddedSearchBackend(params(folder), record["fields"])
    backend.count()
    filters, method = SearchFilters(), settings.SEARCH_FUSION
    space = encoding.get_space()

    def one(text: str) -> dict:
        plan, t_plan, c_plan = timed(lambda: lexical_plan(backend, text, filters=filters))
        words = plan.text

        def encode():
            return encoding.query_vectors_from(encoding.encode_text_query(words), None, space=space,
                                               extra=encoding.encode_additional_queries(words))

        vectors, t_enc, c_enc = timed(encode)

        def rank():
            query = hybrid_query(backend=backend, text=words, vectors=vectors, photo=False, filters=filters, method=method)
            fused = ranked_matches(backend=backend, query=query, filters=filters, method=method)
            fused = click_prior_apply(fused, text=words, weights=query.weights, method=method)
            return plan_apply(fused, plan, photo=False, min_cosine=settings.SEARCH_SIMILAR_MIN_COSINE, text_knn=TEXT_KNN)

        (fused, _), t_rank, c_rank = timed(rank)
        _, t_bm25, _ = timed(lambda: backend.search_text(text, filters=filters, limit=settings.SEARCH_CANDIDATES))
        return {"plan": t_plan, "encode": t_enc, "rank": t_rank, "total": t_plan + t_enc + t_rank,
                "total_cpu": c_plan + c_enc + c_rank, "bm25_only": t_bm25, "results": len(fused)}

    for text in warm:  # other queries (the query cache would answer timed ones): encoders, spelling dictionary, pages
        one(text)
    rows = [one(t) for t in texts]
    return {k: [r[k] for r in rows] for k in rows[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("ENCODER_CPU_THREADS", "1")
    from bench.scale import setup_django

    setup_django()
    from django.conf import settings

    from bench.load import report_write
    from bench.run import percentiles

    if not settings.ADDITIONAL_TEXT_ENCODERS:
        parser.error("ADDITIONAL_TEXT_ENCODERS is empty: this bench measures the default configuration, e5 included")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # the click prior reads its aggregates (none here: a cold shop)
    folder = Path(settings.VAR_DIR) / f"text-query-{args.products}"
    record = build(args.products, folder)
    texts = queries(Path(settings.CATALOG_DIR), args.queries + 10)
    texts, warm = texts[:-10], texts[-10:] + ["cotten towl", "samsnug phone"]
    samples = run(folder, texts, warm)
    load = os.getloadavg()[0]
    stages = [("lexical plan (typos, identifiers)", "plan"), ("encode (MiniLM + e5)", "encode"),
              ("rank (4 retrievers, fusion, floors, re-rank, click prior)", "rank"), ("**whole query**", "total"),
              ("whole query, CPU", "total_cpu"), ("baseline: BM25 alone", "bm25_only")]
    base = percentiles(samples["bm25_only"])
    lines = [f"Text query end to end at {args.products:,} products ({len(texts)} CrowdFlower queries, one thread, "
             f"load average {load:.1f}; index built in {record['build_s']:.0f} s)", "",
             "| stage | p50 ms | p95 ms | p99 ms | p95 / BM25 alone |", "| --- | --- | --- | --- | --- |"]
    for label, key in stages:
        p = percentiles(samples[key])
        lines.append(f"| {label} | {p['p50']:.1f} | {p['p95']:.1f} | {p['p99']:.1f} | {p['p95'] / base['p95']:.1f}x |")
    lines += ["", f"Median results per query: {int(np.median(samples['results']))}"]
    report_write("\n".join(lines), args, {"record": record, "load_average": load, "samples": samples})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
