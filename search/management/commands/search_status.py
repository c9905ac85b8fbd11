"""``manage.py search_status``: indexing state counts, failures, and the engine's facts."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import Count
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from search.backends import get_backend
from search.backends.base import SearchBackendError
from search.embedding.encoders import image_encoder_status, text_encoder_status
from search.embedding.encoding import get_space_info
from search.freshness import space_freshness
from search.management.click_status import click_status_tables
from shop.models import IndexState, Product


class Command(BaseCommand):
    help = "Show how many products are pending, indexed or failed, why they failed, and the index in use."

    def add_arguments(self, parser):
        parser.add_argument("--failures", type=int, default=10, help="List up to N failed products (default 10)")
        parser.add_argument("--mismatches", type=int, default=10, help="List up to N likely wrong photos (default 10)")
        parser.add_argument("--days", type=int, default=7, help="Click events of the last N days (default 7)")

    def handle(self, *args, **opts):
        console = Console(file=self.stdout, width=120)
        counts = dict(Product.objects.values_list("index_state").annotate(n=Count("pk")))
        table = Table(title="Indexing state")
        table.add_column("state")
        table.add_column("products", justify="right")
        for state in IndexState:
            table.add_row(state.label, str(counts.get(state.value, 0)))
        table.add_row("total", str(sum(counts.values())))
        console.print(table)

        backend = None
        try:
            backend = get_backend()
            space = get_space_info(backend)
        except SearchBackendError:
            space = get_space_info()
        console.print(f"Fusion space: {escape(space['note'])}; {space['dim']}-d fused vectors.")
        for label, status in (("Text encoder", text_encoder_status), ("Image encoder", image_encoder_status)):
            try:
                console.print(f"{label}: {escape(status())}.")
            except ValueError as exc:
                console.print(f"[red]{label}: {escape(str(exc))}[/red]")
        if space.get("index_note"):
            console.print(f"[yellow]Note: {escape(space['index_note'])}.[/yellow]")
        if backend is not None:
            try:
                for note in space_freshness(backend).notes():
                    console.print(f"[yellow]Note: {escape(note)}.[/yellow]")
            except SearchBackendError:
                pass  # reported below with the index facts
        for version, reason in space["problems"].items():
            if version != "active":
                console.print(f"[yellow]Fusion head {escape(version)} not used: {escape(reason)}[/yellow]")
        try:
            facts = (backend or get_backend()).describe()
            console.print("Index: " + ", ".join(f"{k}={v}" for k, v in facts.items()))
            indexed = counts.get(IndexState.INDEXED, 0) + counts.get(IndexState.FAILED, 0)
            if facts.get("documents") is not None and facts["documents"] != indexed:
                console.print(f"[yellow]The index holds {facts['documents']} documents but {indexed} products are indexed or failed: "
                              "run `manage.py reindex`.[/yellow]")
        except SearchBackendError as exc:
            console.print(f"[red]Search engine unavailable: {exc}[/red]")

        failed = Product.objects.filter(index_state=IndexState.FAILED).order_by("-updated_at")[: opts["failures"]]
        if failed:
            ft = Table(title="Recent failures")
            ft.add_column("id", justify="right")
            ft.add_column("external id")
            ft.add_column("title")
            ft.add_column("reason")
            for p in failed:
                ft.add_row(str(p.pk), p.external_id or "", p.title[:40], p.index_error)
            console.print(ft)

        self._mismatches(console, opts["mismatches"])

        # -- click feedback: what was recorded, what was discarded and why --
        for table in click_status_tables(days=opts["days"]):
            console.print(table)

    def _mismatches(self, console: Console, limit: int) -> None:
        """Photo-text consistency (search.consistency): the products whose photo least matches their words."""
        from search.consistency import likely_mismatches

        limit_, rows = likely_mismatches(limit=limit)
        if limit_.value is None:
            console.print(f"Photo-text consistency: no flags ({escape(limit_.reason)}).")
            return
        console.print(f"Photo-text consistency: {limit_.n_scored} products scored; below {limit_.value:.3f} "
                      f"(the lowest {settings.CONSISTENCY_FLAG_QUANTILE:.0%}) counts as a likely wrong photo.")
        if rows:
            mt = Table(title="Likely wrong photos (photo does not match the words)")
            for col, justify in (("id", "right"), ("external id", "left"), ("title", "left"), ("consistency", "right")):
                mt.add_column(col, justify=justify)
            for e in rows:
                mt.add_row(str(e.product_id), e.product.external_id or "", escape(e.product.title[:50]), f"{e.consistency:.3f}")
            console.print(mt)
