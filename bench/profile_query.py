"""Where a query's time goes: pyinstrument over text and photo queries on a built synthetic index.

Run after ``bench/run.py`` built ``VAR_DIR/synthetic-<n>``::

    python bench/profile_query.py --products 10000 --queries 30

Prints pyinstrument's call tree (text queries, then photo queries), one thread per query as in
the benchmark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()

    from bench import run

    run.setup_django()
    from django.conf import settings
    from pyinstrument import Profiler

    from search.backends.embedded import EmbeddedSearchBackend
    from search.embedding.encoding import vector_dims
    from search.hybrid.pipeline import rankings_blend, search_rankings

    root = Path(settings.VAR_DIR) / f"synthetic-{args.products}"
    if not (root / "products").exists():
        raise SystemExit(f"No index at {root}: run bench/run.py --scenarios synthetic-{args.products // 1000}k first.")
    backend = EmbeddedSearchBackend({"INDEX_DIR": root, "INDEX": "products"}, vector_dims())
    backend.count()  # open the index before profiling (loading 100k graphs takes seconds)
    run.warm_up()
    texts = run.text_queries(args.queries)
    photos = run.query_photos(args.queries)
    for label, items in (("text", [(t, None) for t in texts]), ("photo", [("", p) for p in photos])):
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for text, photo in items:
            _, vectors, _ = run.encode_query(text, photo)
            rankings_blend(search_rankings(backend=backend, text=text, vectors=vectors))
        profiler.stop()
        print(f"\n===== {label} queries x {len(items)} =====")
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
