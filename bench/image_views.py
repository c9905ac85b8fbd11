"""Test-time views (``IMAGE_QUERY_VIEWS`` / ``IMAGE_GALLERY_VIEWS``): encoding cost per photo against one view.

    python bench/image_views.py [--photos 32] [--rounds 3] [--json out.json]

The storefront's image encoder (ONNX Runtime, ``ENCODER_CPU_THREADS`` threads) encodes the same
decoded Flipkart photos with each view set of ``mlmodels.image_views.VIEW_SETS``, set after set
within each round so every set sees the same machine load. Two loads:

* **catalog**: ``encode_views(32 photos, set)``, what ``products_index`` does per batch;
* **query**: ``encode_views([photo], set)``, one shopper's photo.

Reported per photo: process CPU ms (the steadier number on a shared machine) and wall ms, the
minimum over rounds, and the ratio to ``center`` measured in the same run. Indexing throughput
is then estimated from a measured ``products_index`` rate with one view (``--base-rate``, products/s
of one process; bench/RESULTS.md: 44.6 on Flipkart with ONNX Runtime) by replacing the image part:
``1000 / (1000 / base - center_ms + set_ms)`` per process, x processes (one per core).
Decoding is not timed. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-rate", type=float, default=44.6, help="products/s of one indexing process with one view")
    parser.add_argument("--processes", type=int, default=2, help="indexing processes (one per core)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()
    from django.conf import settings

    from mlmodels.image_views import VIEW_SETS, encode_views
    from mlmodels.images import open_image
    from search.embedding.encoders import image_encoder

    paths = sorted((Path(settings.CATALOG_DIR) / "flipkart" / "images").glob("*.jpg"))[: args.photos]
    photos = [open_image(p.read_bytes()).image for p in paths]
    encoder = image_encoder()
    encode_views(encoder, photos[:2], "crops6")  # warm up, not timed
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for name in VIEW_SETS:
            for load, batch in (("catalog", photos), ("query", photos[:1])):
                reps = 1 if load == "catalog" else 8
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for _ in range(reps):
                    encode_views(encoder, batch, name)
                n = len(batch) * reps
                cpu, wall = (time.process_time() - cpu0) * 1000 / n, (time.perf_counter() - wall0) * 1000 / n
                cell = best.setdefault(f"{name}/{load}", {"cpu_ms": cpu, "wall_ms": wall})
                cell["cpu_ms"], cell["wall_ms"] = min(cell["cpu_ms"], cpu), min(cell["wall_ms"], wall)
    base_ms = 1000 / args.base_rate
    rows = []
    for name, views in VIEW_SETS.items():
        cat, query = best[f"{name}/catalog"], best[f"{name}/query"]
        per_process = 1000 / (base_ms - best["center/catalog"]["cpu_ms"] + cat["cpu_ms"])
        rows.append({"views": name, "forwards": len(views), "catalog_cpu_ms": cat["cpu_ms"], "catalog_wall_ms": cat["wall_ms"],
                     "x_center": cat["cpu_ms"] / best["center/catalog"]["cpu_ms"], "query_cpu_ms": query["cpu_ms"],
                     "query_x_center": query["cpu_ms"] / best["center/query"]["cpu_ms"],
                     "indexing_products_per_s_est": per_process * args.processes})
    print(f"{len(photos)} Flipkart photos, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}; "
          f"indexing estimate from {args.base_rate} products/s per process x {args.processes}")
    print("| view set | forwards | catalog CPU ms / photo | x center | query CPU ms | x center | indexing products/s (est.) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['views']} | {r['forwards']} | {r['catalog_cpu_ms']:.1f} | {r['x_center']:.2f} | {r['query_cpu_ms']:.1f} | "
              f"{r['query_x_center']:.2f} | {r['indexing_products_per_s_est']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
