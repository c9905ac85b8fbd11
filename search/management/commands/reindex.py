"""``manage.py reindex``: rebuild the whole index beside the live one, then swap it in."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from search.backends import get_backend, load_backend
from search.services import products_index
from shop.models import Product


class Command(BaseCommand):
    help = "Rebuild the search index with no downtime: build a new index, catch up, swap the alias."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=64, help="Products embedded and written per batch (default 64)")
        parser.add_argument("--backend", default="default", help="SEARCH_BACKENDS alias (default: default)")
        parser.add_argument("--re-embed", action="store_true", help="Re-encode every text and photo, even unchanged ones")

    def handle(self, *args, **opts):
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        live = get_backend(opts["backend"]) if opts["backend"] == "default" else load_backend(opts["backend"])
        before = live.count()
        started_at = timezone.now()
        t0 = time.perf_counter()
        ids = list(Product.objects.order_by("pk").values_list("pk", flat=True))
        indexed, failed, caught_up = 0, {}, []

        def catch_up(new):
            # Runs with writes to the live index blocked: apply what changed during the build.
            caught_up.extend(Product.objects.filter(updated_at__gte=started_at).values_list("pk", flat=True))
            gone = sorted(new.ids() - set(Product.objects.values_list("pk", flat=True)))
            if caught_up:
                products_index(product_ids=caught_up, backend=new)
            if gone:
                new.delete(gone)
            new.refresh()
            if new.count() != Product.objects.count():
                raise CommandError(f"The new index holds {new.count()} products, the catalog {Product.objects.count()}; the live index was kept.")

        with live.rebuild(before_swap=catch_up) as new:
            with tqdm(total=len(ids), desc="Reindexing", unit="product", disable=opts["verbosity"] == 0) as bar:
                for start in range(0, len(ids), opts["batch_size"]):
                    batch = ids[start:start + opts["batch_size"]]
                    report = products_index(product_ids=batch, backend=new, force=opts["re_embed"])
                    indexed += len(report.indexed)
                    failed.update(report.failed)
                    bar.update(len(batch))
        after = live.count()
        took = time.perf_counter() - t0
        self.stdout.write(self.style.SUCCESS(
            f"Reindexed {after} products in {took:.1f} s ({after / took if took else 0:.1f} products/s); "
            f"live index had {before}; {len(failed)} with photo problems; {len(caught_up)} caught up during the build."
        ))
        for pid, reason in list(failed.items())[:10]:
            self.stdout.write(f"  product {pid}: {reason}")
