"""``manage.py import_catalog {flipkart,fashion,grocery} [DIR]``: load a catalog, then index it."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from shop.importers import FORMATS, CatalogFormatError, read_catalog
from shop.services import catalog_import


class Command(BaseCommand):
    help = "Import a product catalog (idempotent on the source's id), copy its photos, and index it."

    def add_arguments(self, parser):
        parser.add_argument("format", choices=FORMATS)
        parser.add_argument("folder", nargs="?", help="Catalog folder (default: CATALOG_DIR/<format>)")
        parser.add_argument("--limit", type=int, default=None, help="Import at most N rows (for trials)")
        parser.add_argument("--no-index", action="store_true", help="Only import; index later with `reindex`")
        parser.add_argument("--batch-size", type=int, default=32, help="Products per indexing batch")

    def handle(self, *args, **opts):
        folder = Path(opts["folder"] or settings.CATALOG_DIR / opts["format"])
        if not folder.is_dir():
            raise CommandError(f"Catalog folder {folder} does not exist (set CATALOG_DIR or pass the folder).")
        try:
            rows = list(read_catalog(opts["format"], folder))
        except CatalogFormatError as exc:
            raise CommandError(str(exc)) from exc
        if opts["limit"]:
            rows = rows[: opts["limit"]]
        started = time.perf_counter()
        with tqdm(total=len(rows), desc="Importing", unit="product", disable=opts["verbosity"] == 0) as bar:
            summary = catalog_import(rows, progress=lambda: bar.update(1))
        import_s = time.perf_counter() - started

        indexed = failed = 0
        index_s = 0.0
        if not opts["no_index"] and summary.product_ids:
            from search.services import products_index  # the encoders (torch): only when indexing

            started = time.perf_counter()
            ids = summary.product_ids
            with tqdm(total=len(ids), desc="Indexing", unit="product", disable=opts["verbosity"] == 0) as bar:
                for start in range(0, len(ids), opts["batch_size"]):
                    report = products_index(product_ids=ids[start:start + opts["batch_size"]])
                    indexed += len(report.indexed)
                    failed += len(report.failed)
                    bar.update(len(ids[start:start + opts["batch_size"]]))
            index_s = time.perf_counter() - started

        console = Console(file=self.stdout, width=110)
        table = Table(title=f"Import of {folder} ({opts['format']})")
        table.add_column("outcome")
        table.add_column("products", justify="right")
        table.add_column("details")
        table.add_row("created", str(summary.created), "")
        table.add_row("updated", str(summary.updated), "")
        table.add_row("unchanged", str(summary.unchanged), "")
        for reason, count in summary.skipped.most_common():
            table.add_row("skipped", str(count), f"{reason}: e.g. {', '.join(summary.skipped_examples[reason][:3])}")
        if not opts["no_index"]:
            table.add_row("indexed", str(indexed), f"{index_s:.1f} s, {indexed / index_s if index_s else 0:.1f} products/s")
            table.add_row("index failures", str(failed), "see `manage.py search_status` and the admin")
        console.print(table)
        console.print(cleaning_table(summary))
        console.print(f"Import took {import_s:.1f} s.")


def cleaning_table(summary) -> Table:
    """Rows and values each cleaning rule changed (``shop.cleaning.RULES``), with example ids."""
    table = Table(title="Cleaning (rows the rule changed, of the rows imported)")
    table.add_column("rule")
    table.add_column("rows", justify="right")
    table.add_column("values", justify="right")
    table.add_column("what changed, e.g.")
    for rule, text, rows in summary.cleaned_rows():
        shown = summary.cleaning.examples.get(rule) or summary.cleaned_examples.get(rule) or []
        table.add_row(rule, str(rows), str(summary.cleaning.counts[rule]), f"{text}{': ' if shown else ''}{'; '.join(shown[:3])}")
    return table
