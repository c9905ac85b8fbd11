"""What "How shoppers find this product" costs on a busy click log: ``product_queries`` beside a full scan.

A throwaway SQLite database (a temporary ``VAR_DIR``) gets ``--impressions`` results pages of 24
products each, spread over the last 30 days, over ``--products`` products whose popularity
follows a Zipf law (so a few products are on many pages and most on few), and a counted click on
3 % of the pages. Then, for a popular, a middling and a rare product, it times
:func:`search.clicks.analytics.product_queries` (the database narrows the pages by a text match
on the stored id list, Python checks each candidate) against the baseline of reading every page
of the period and checking it in Python, and checks both give the same counts (or, for a product
on more than ``MAX_PRODUCT_IMPRESSIONS_SCANNED`` pages, that the page says it read only the newest). Not part of the
test suite; run ``python bench/product_insights.py [--impressions N] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(var_dir: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["VAR_DIR"] = var_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    os.environ["CELERY_BROKER_URL"] = ""
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def fill(n_products: int, n_impressions: int, seed: int = 0) -> list[int]:
    """Products and a click log; returns the product ids by popularity, most shown first."""
    import numpy as np
    from django.utils import timezone

    from search.clicks.models import SearchClick, SearchImpression
    from shop.models import Product
    from shop.signals import indexing_deferred

    rng = np.random.default_rng(seed)
    with indexing_deferred():
        Product.objects.bulk_create([Product(title=f"Product {i}", external_id=f"bench-{i}") for i in range(n_products)], batch_size=2000)
    ids = np.array(sorted(Product.objects.values_list("pk", flat=True)))
    weights = 1.0 / np.arange(1, len(ids) + 1) ** 1.1
    weights /= weights.sum()
    now = timezone.now()
    queries = [f"query {q}" for q in range(500)]
    batch: list[SearchImpression] = []
    for i in range(n_impressions):
        page = rng.choice(ids, size=24, replace=False, p=weights).tolist()
        batch.append(SearchImpression(
            query=queries[int(rng.integers(len(queries)))], product_ids=page, session_hash=f"s{i % 5000}",
            created=now - timedelta(seconds=float(rng.uniform(0, 30 * 86400))), total=24,
        ))
        if len(batch) == 5000:
            SearchImpression.objects.bulk_create(batch)
            batch = []
    SearchImpression.objects.bulk_create(batch)
    clicks = []
    for imp in SearchImpression.objects.order_by("?")[: n_impressions * 3 // 100].only("pk", "product_ids", "session_hash", "created"):
        position = int(rng.integers(len(imp.product_ids)))
        clicks.append(SearchClick(impression=imp, product_id=imp.product_ids[position], position=position + 1,
                                  session_hash=imp.session_hash, created=imp.created, counted=True))
    SearchClick.objects.bulk_create(clicks, batch_size=5000)
    return ids.tolist()


def full_scan(product_id: int, days: int) -> tuple[int, int]:
    """The baseline: every page of the period read and checked in Python; (impressions, clicks)."""
    from django.utils import timezone

    from search.clicks.models import SearchClick, SearchImpression

    since = timezone.now() - timedelta(days=days)
    shown = sum(
        1 for ids in SearchImpression.objects.filter(created__gte=since).values_list("product_ids", flat=True).iterator(chunk_size=2000)
        if product_id in ids
    )
    clicks = SearchClick.objects.filter(product_id=product_id, counted=True, created__gte=since).count()
    return shown, clicks


def timed(fn, repeats: int) -> tuple[float, object]:
    samples, out = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-insights-") as var_dir:
        setup_django(var_dir)
        from search.clicks.analytics import product_queries

        started = time.perf_counter()
        by_popularity = fill(args.products, args.impressions)
        print(f"{args.impressions:,} pages of 24 over {args.products:,} products written in {time.perf_counter() - started:.1f} s")
        rows = []
        for name, pid in (("popular", by_popularity[0]), ("middling", by_popularity[len(by_popularity) // 20]), ("rare", by_popularity[-1])):
            ms, found = timed(lambda pid=pid: product_queries(pid, days=30), args.repeats)
            base_ms, (shown, clicks) = timed(lambda pid=pid: full_scan(pid, 30), args.repeats)
            # the same counts, unless the product is on more pages than product_queries reads (then it says so)
            assert found.clicks == clicks and (found.impressions == shown or (found.capped and found.impressions < shown)), (name, found, shown)
            rows.append({"product": name, "impressions": shown, "clicks": clicks, "capped": found.capped,
                         "impressions_read": found.impressions, "product_queries_ms": round(ms, 1),
                         "full_scan_ms": round(base_ms, 1), "speed_up": round(base_ms / ms, 2)})
        print("| product | pages showing it | counted by product_queries | clicks | product_queries (ms) | full scan (ms) | ratio |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            counted = f"{r['impressions_read']:,}" + (" (capped)" if r["capped"] else "")
            print(f"| {r['product']} | {r['impressions']:,} | {counted} | {r['clicks']:,} | {r['product_queries_ms']} | {r['full_scan_ms']} "
                  f"| {r['speed_up']}× |")
        if args.json:
            args.json.write_text(json.dumps({"impressions": args.impressions, "products": args.products, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
