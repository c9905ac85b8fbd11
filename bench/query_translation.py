"""What query translation (``search.translation``) costs a Chinese or Hindi query, against the BM25
search the query runs anyway, in one process on the Flipkart catalog's text.

    python bench/query_translation.py [--rounds 5] [--json out.json] [--markdown out.md]

The catalog (``CATALOG_DIR/flipkart``) is indexed once, text only, in an embedded engine in a
temporary folder. Then, for the 46 Chinese and 46 Hindi queries of the ``multilingual`` set
(``search.evaluation.multilingual``):

* **first use**: reading the dictionaries (CC-CEDICT into its word map, the English word list into
  its Metaphone index), once per process: wall and CPU time, and the process's resident memory
  before and after;
* **translation, per query**: ``search.hybrid.pipeline.query_translation`` (jieba, the dictionary,
  and for Hindi the engine's ``known_words``), against
* **BM25, per query**: the typed words' BM25 search, and the extra ``bm25_translated`` search.

Calls alternate query by query so all see the same machine load. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes over the queries (default 5)")
    parser.add_argument("--json", type=Path, help="save every number as JSON")
    parser.add_argument("--markdown", type=Path, help="save the table as Markdown")
    args = parser.parse_args(argv)
    from bench.run import setup_django

    setup_django()
    return args


def rss_mb() -> float:
    """The process's resident memory now, MB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def catalog_backend(root: Path):
    """An embedded engine under ``root`` holding the Flipkart catalog's text (no vectors)."""
    from django.conf import settings

    from search.backends.base import SearchDocument
    from search.backends.embedded import EmbeddedSearchBackend
    from shop.importers import read_catalog

    rows = [r for r in read_catalog("flipkart", Path(settings.CATALOG_DIR) / "flipkart") if not r.skip_reason]
    backend = EmbeddedSearchBackend({"INDEX_DIR": root, "INDEX": "bench"}, {"text": 8})
    backend.reset_index()
    backend.add_bulk([SearchDocument(id=i, external_id=r.external_id, title=r.title, description=r.description, brand=r.brand,
                                     category_path=list(r.category_path)) for i, r in enumerate(rows, start=1)])
    backend.refresh()
    return backend, len(rows)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    from bench.encoder_timing import summary, timed
    from bench.load import report_write
    from search.evaluation.multilingual import INTENTS
    from search.hybrid.pipeline import query_translation

    with tempfile.TemporaryDirectory(prefix="translation-bench-") as tmp:
        backend, n_products = catalog_backend(Path(tmp))
        queries = {"Chinese": [zh for _, _, zh, _ in INTENTS], "Hindi": [hi for _, _, _, hi in INTENTS]}
        backend.search_text(queries["Chinese"][0], limit=200)  # jieba's dictionary, read by BM25 anyway
        before = rss_mb()
        w0, c0 = time.perf_counter(), time.process_time()
        for language in queries.values():
            query_translation(backend, language[0])
        first = {"wall_ms": (time.perf_counter() - w0) * 1000, "cpu_ms": (time.process_time() - c0) * 1000,
                 "rss_before_mb": before, "rss_after_mb": rss_mb()}
        translated = {q: query_translation(backend, q) for language in queries.values() for q in language}
        samples = {(lang, what): [] for lang in queries for what in ("translation", "bm25", "bm25_translated")}
        for _ in range(args.rounds):
            for lang, texts in queries.items():
                for q in texts:
                    samples[(lang, "translation")].append(timed(lambda q=q: query_translation(backend, q))[1])
                    samples[(lang, "bm25")].append(timed(lambda q=q: backend.search_text(q, limit=200))[1])
                    if translated[q]:
                        samples[(lang, "bm25_translated")].append(timed(lambda q=q: backend.search_text(translated[q], limit=200))[1])
    stats = {f"{lang} {what}": summary(s) for (lang, what), s in samples.items() if s}
    lines = [f"Query translation, {n_products} Flipkart products, {args.rounds} rounds; CPU ms per query",
             "",
             f"First use (dictionaries read once per process): {first['wall_ms']:.0f} ms wall, {first['cpu_ms']:.0f} ms CPU; "
             f"resident memory {first['rss_before_mb']:.0f} -> {first['rss_after_mb']:.0f} MB",
             "",
             "| language | step | queries | CPU p50 (ms) | CPU p95 (ms) | p50 × typed BM25 |",
             "|---|---|---:|---:|---:|---:|"]
    for lang in queries:
        base = stats[f"{lang} bm25"]["p50"]
        for what in ("translation", "bm25", "bm25_translated"):
            s = stats.get(f"{lang} {what}")
            if s:
                lines.append(f"| {lang} | {what} | {s['n'] // args.rounds} | {s['p50']:.2f} | {s['p95']:.2f} | {s['p50'] / base:.2f} |")
    report_write("\n".join(lines), args, {"first_use": first, "stats": stats, "n_products": n_products,
                                           "translations": translated})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
