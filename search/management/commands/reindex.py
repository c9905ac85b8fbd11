"""``manage.py reindex``: rebuild the whole index beside the live one, then swap it in.

The new build's fused vectors are made in the active fusion space (a newly trained head
included) and record it; search keeps using the live build, and its space, until the swap.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from search.backends import get_backend, load_backend
from search.backends.base import SearchBackendError
from search.embedding import encoding
from search.services import products_index
from shop.models import Product


class Command(BaseCommand):
    help = "Rebuild the search index with no downtime: build a new index, catch up, swap the alias."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=64, help="Products embedded and written per batch (default 64)")
        parser.add_argument("--backend", default="default", help="SEARCH_BACKENDS alias (default: default)")
        parser.add_argument("--re-embed", action="store_true", help="Re-encode every text and photo, even unchanged ones")
        parser.add_argument("--keep", type=int, default=None, help="Previous index builds kept for rollback (default: the backend's, 1)")

    def handle(self, *args, **opts):
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if opts["keep"] is not None and opts["keep"] < 0:
            raise CommandError("--keep must be 0 or more")
        live = get_backend(opts["backend"]) if opts["backend"] == "default" else load_backend(opts["backend"])
        try:
            before = live.count()
        except SearchBackendError as exc:
            raise CommandError(f"The {opts['backend']!r} search backend cannot be used: {exc}") from exc
        started_at = timezone.now()
        t0 = time.perf_counter()
        ids = list(Product.objects.order_by("pk").values_list("pk", flat=True))
        failed, caught_up = {}, []

        def catch_up(new):
            # Runs with writes to the live index blocked: apply what changed during the build.
            caught_up.extend(Product.objects.filter(updated_at__gte=started_at).values_list("pk", flat=True))
            if caught_up:
                failed.update(products_index(product_ids=caught_up, backend=new).failed)
            catalog = set(Product.objects.values_list("pk", flat=True))
            gone = sorted(new.ids() - catalog)
            if gone:
                new.delete(gone)
            new.refresh()
            # Every product must be in the new index, except those the engine refused (recorded as failed).
            absent = catalog - new.ids() - set(failed)
            if absent:
                raise CommandError(
                    f"The new index lacks {len(absent)} of {len(catalog)} products (e.g. {sorted(absent)[:5]}); the live index was kept."
                )

        space = encoding.get_space()  # loads and checks the active head; the bridge if it cannot be used
        try:
            self._rebuild(live, ids, opts, catch_up, failed, space)
        except SearchBackendError as exc:
            raise CommandError(f"Reindex failed, the live index was kept: {exc}") from exc
        after = live.count()
        took = time.perf_counter() - t0
        self.stdout.write(self.style.SUCCESS(
            f"Reindexed {after} products in {took:.1f} s ({after / took if took else 0:.1f} products/s); "
            f"live index had {before}; {len(failed)} failed or with photo problems; {len(caught_up)} caught up during the build. "
            f"Fused vectors: {space.name} {space.version} ({space.dim}-d)."
        ))
        for pid, reason in list(failed.items())[:10]:
            self.stdout.write(f"  product {pid}: {reason}")

    def _rebuild(self, live, ids, opts, catch_up, failed, space) -> None:
        # The new build's fused vectors are made in (and record) the active space.
        target = {"name": space.name, "version": space.version, "dim": space.dim}
        dims = encoding.vector_dims(space.dim)
        with live.rebuild(before_swap=catch_up, keep=opts["keep"], vector_dims=dims, space=target) as new:
            with tqdm(total=len(ids), desc="Reindexing", unit="product", disable=opts["verbosity"] == 0) as bar:
                for start in range(0, len(ids), opts["batch_size"]):
                    batch = ids[start:start + opts["batch_size"]]
                    report = products_index(product_ids=batch, backend=new, force=opts["re_embed"])
                    failed.update(report.failed)
                    bar.update(len(batch))
