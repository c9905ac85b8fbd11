"""Text encoder on CPU: torch against ONNX Runtime, per text, in one process on the same texts.

    python bench/text_encoder.py [--documents 64] [--queries 48] [--rounds 3] [--json out.json] [--markdown out.md]

Both encoders are the storefront's own (``mlmodels.text.MiniLMEncoder``, all-MiniLM-L6-v2, one
CPU thread each as ``ENCODER_CPU_THREADS`` says); tokenisation (the model's tokenizer, cut at
``MAX_SEQ_LENGTH`` tokens) is included for both. Two loads:

* **query, batch 1**: ``encode_query([q])`` on real shopper queries (CrowdFlower, 2-5 words),
  what a text search costs when its vector is not cached;
* **documents, batch 32**: ``encode_document(32 texts)`` on real Flipkart products as the
  indexer composes them (title, brand, category path, description start; about half reach the
  128-token limit), what ``products_index`` hands the encoder per task
  (``workers.tasks.BATCH_SIZE``); each encoder sorts the call's texts by length and splits them
  into forward passes of 1, 4, 8, 16 or 32 texts (``ONNX_CPU_BATCH_SIZE`` for ONNX Runtime;
  torch's ``TORCH_BATCH_SIZE`` of 64 makes one pass of the 32).

Runs alternate between the runtimes text by text and chunk by chunk so both see the same
machine load (``bench/encoder_timing.py``). Wall and process CPU time are reported per text;
on a shared machine CPU time is the steadier of the two. Not part of the test suite.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.encoder_timing import arguments, load_average, load_both, report, run_notes, run_record, time_loads  # noqa: E402

FORWARD_BATCHES = (1, 4, 8, 16, 32)


def load_documents(n: int) -> list[str]:
    """The first ``n`` importable Flipkart products, as ``search.documents.document_text`` composes them."""
    from django.conf import settings

    from search.documents import compose_document_text
    from shop.importers import read_catalog

    rows = [r for r in read_catalog("flipkart", Path(settings.CATALOG_DIR) / "flipkart") if not r.skip_reason][:n]
    return [compose_document_text(title=r.title, brand=r.brand, category_path=r.category_path, description=r.description)
            for r in rows]


def load_queries(n: int) -> list[str]:
    """The first ``n`` distinct shopper queries of the CrowdFlower judgments."""
    from django.conf import settings

    queries: list[str] = []
    with (Path(settings.CATALOG_DIR) / "crowdflower" / "train.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            if rec["query"] not in queries:
                queries.append(rec["query"])
    return queries[:n]


def encode(encoder, texts: list[str]):
    """A query is encoded alone (``encode_query``), documents 32 at a time (``encode_document``)."""
    return encoder.encode_query(texts) if len(texts) == 1 else encoder.encode_document(texts)


def run(n_documents: int, n_queries: int, rounds: int) -> dict:
    import numpy as np
    from django.conf import settings

    from mlmodels.device import configure_cpu_threads
    from mlmodels.text import MiniLMEncoder

    threads = configure_cpu_threads()
    load_before = load_average()
    encoders, load_s = load_both(lambda runtime: MiniLMEncoder(
        "cpu", runtime=runtime, cache_dir=settings.ENCODER_CACHE_DIR, threads=threads))
    documents, queries = load_documents(n_documents), load_queries(n_queries)
    for enc in encoders.values():  # warm up, not timed
        enc.encode_document(documents[:8])
        enc.encode_query(queries[:2])

    chunks = [documents[start:start + 32] for start in range(0, len(documents) - 31, 32)]
    loads = {"query, batch 1": (1, [[q] for q in queries]),
             **{f"documents, batch 32, forward {fb}": (fb, chunks) for fb in FORWARD_BATCHES}}
    results = time_loads(encoders, loads, encode, rounds)

    limit = encoders["torch"]._model.max_seq_length
    tokens = [len(ids) for ids in encoders["torch"]._model.tokenizer(documents, truncation=True, max_length=limit)["input_ids"]]
    cos = {"documents": [], "queries": []}
    for name, texts in (("documents", documents), ("queries", [[q] for q in queries])):
        a = np.concatenate([encode(encoders["torch"], t) for t in (texts if name == "queries" else [texts])])
        b = np.concatenate([encode(encoders["onnx"], t) for t in (texts if name == "queries" else [texts])])
        cos[name] = float((a * b).sum(axis=1).min())
    return {
        **run_record(encoders, load_s, threads, load_before),
        "documents": len(documents), "queries": len(queries), "rounds": rounds,
        "document_tokens": {"mean": float(np.mean(tokens)), "at_limit": float(np.mean(np.array(tokens) == limit))},
        "min_cosine": cos,
        "results": results,
    }


def notes(r: dict) -> list[str]:
    return [
        *run_notes(r, f"{r['queries']} CrowdFlower queries and {r['documents']} Flipkart documents"),
        f"documents: {r['document_tokens']['mean']:.0f} tokens on average, {r['document_tokens']['at_limit']:.0%} cut at the limit",
        f"onnx vs torch, lowest cosine: documents {r['min_cosine']['documents']:.7f}, queries {r['min_cosine']['queries']:.7f}",
    ]


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.split("\n")[0], "document", argv)
    result = run(args.documents, args.queries, args.rounds)
    report(result, "Text encoder per text on CPU", "text", notes(result), args.json, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
