"""``manage.py reindex``: rebuild the whole index beside the live one, then swap it in.

The procedure is :func:`search.reindex.index_rebuild`; this command parses the options, shows
progress and prints the outcome.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.reindex import RebuildError, index_rebuild


class Command(BaseCommand):
    help = "Rebuild the search index with no downtime: build a new index, catch up, swap the alias."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=64, help="Products embedded and written per batch (default 64)")
        parser.add_argument("--backend", default="default", help="SEARCH_BACKENDS alias (default: default)")
        parser.add_argument("--re-embed", action="store_true", help="Re-encode every text and photo, even unchanged ones")
        parser.add_argument("--keep", type=int, default=None,
                            help="Previous complete index builds kept for rollback (default: the backend's, 1)")

    def handle(self, *args, **opts):
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if opts["keep"] is not None and opts["keep"] < 0:
            raise CommandError("--keep must be 0 or more")
        with tqdm(total=None, desc="Reindexing", unit="product", disable=opts["verbosity"] == 0) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)
                if opts["verbosity"] >= 2:
                    self.stdout.write(f"Written {done} of {total} products into the new index")
                    self.stdout.flush()

            try:
                report = index_rebuild(
                    backend=opts["backend"], batch_size=opts["batch_size"], re_embed=opts["re_embed"], keep=opts["keep"],
                    progress=progress,
                )
            except RebuildError as exc:
                raise CommandError(exc.reason) from exc
        space = report.space
        self.stdout.write(self.style.SUCCESS(
            f"Reindexed {report.after} products in {report.took_s:.1f} s ({report.products_per_s:.1f} products/s); "
            f"live index had {report.before}; {len(report.failed)} failed or with photo problems; "
            f"{len(report.caught_up)} caught up during the build. "
            f"Fused vectors: {space.name} {space.version} ({space.dim}-d)."
        ))
        if report.changed:
            self.stdout.write(f"{len(report.changed)} products changed after the catch-up: left pending and enqueued again.")
        for pid, reason in list(report.failed.items())[:10]:
            self.stdout.write(f"  product {pid}: {reason}")
