"""BM25 bulk indexing: tantivy writer heap, threads and commit size against documents/s.

    python bench/bm25_bulk.py --n 50000

Indexes the synthetic catalog's text (``bench/synthetic.py``, real words recombined) into a fresh
tantivy index per setting, timing ``BM25Index.write`` and the final commit and merge, wall and
CPU; the bulk settings of ``search/backends/_bm25.py`` were chosen from this table. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
#: (label, heap bytes, writer threads (0: one per core), documents per commit (0: one at the end))
SETTINGS = (
    ("one writer per 5k batch, 50 MB, 1 thread (the live path)", 50_000_000, 1, 5_000),
    ("bulk: 50 MB, 1 thread, one commit", 50_000_000, 1, 0),
    ("bulk: 400 MB, all cores, commit every 200k", 400_000_000, 0, 200_000),
    ("bulk: 400 MB, all cores, commit every 20k", 400_000_000, 0, 20_000),
    ("bulk: 1 GB, all cores, one commit", 1_000_000_000, 0, 0),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    args = parser.parse_args(argv)
    from bench.scale import setup_django

    setup_django()
    from django.conf import settings

    from bench.synthetic import load_vocabulary, synthetic_batches
    from search.backends import _bm25
    from search.backends.base import SearchDocument

    vocab = load_vocabulary(Path(settings.CATALOG_DIR))
    docs = [SearchDocument(id=int(b.ids[i]), title=b.titles[i], brand=b.brands[i], category_path=b.categories[i],
                           description=b.descriptions[i], price=float(100 + i % 5000))
            for b in synthetic_batches(vocab, args.n) for i in range(len(b.ids))]
    print("| setting | documents/s | documents/CPU-s | segments |\n| --- | ---: | ---: | ---: |")
    for label, heap, threads, commit in SETTINGS:
        folder = Path(tempfile.mkdtemp(prefix="bm25-bulk-"))
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            if commit == 5_000 and threads == 1:  # the live path: a writer and a commit per batch
                index = _bm25.BM25Index(folder, settings.SEARCH_FIELD_BOOSTS)
                for i in range(0, len(docs), commit):
                    index.write(docs[i:i + commit], [])
            else:
                saved = (_bm25.BULK_HEAP_BYTES, _bm25.BULK_COMMIT_DOCS)
                _bm25.BULK_HEAP_BYTES, _bm25.BULK_COMMIT_DOCS = heap, commit or 1 << 62
                try:
                    index = _bm25.BM25Index(folder, settings.SEARCH_FIELD_BOOSTS, bulk=True)
                    if threads == 1:
                        index._writer = index.index.writer(heap_size=heap, num_threads=1)
                    for i in range(0, len(docs), 5_000):
                        index.write(docs[i:i + 5_000], [])
                    index.finish()
                finally:
                    _bm25.BULK_HEAP_BYTES, _bm25.BULK_COMMIT_DOCS = saved
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            segments = len(list(folder.glob("*.idx")))
            print(f"| {label} | {len(docs) / wall:.0f} | {len(docs) / cpu:.0f} | {segments} |", flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
