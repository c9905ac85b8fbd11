"""``manage.py search "<words>" [--image PATH] [--limit N] [--json]``: run a storefront query."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.table import Table

from search.backends.base import SearchBackendError
from search.request import SearchRequestError, parse_search_request


class Command(BaseCommand):
    help = "Search the catalog exactly as the storefront does and print the ranked products with score parts."

    def add_arguments(self, parser):
        parser.add_argument("words", nargs="?", default="", help="What a shopper types")
        parser.add_argument("--image", type=Path, help="A photo to search by (with or without words)")
        parser.add_argument("--limit", type=int, default=10)
        parser.add_argument("--category", help='Category path, e.g. "Watches > Wrist Watches"')
        parser.add_argument("--brand", action="append", default=[], help="Brand (repeatable)")
        parser.add_argument("--min-price", dest="price_min")
        parser.add_argument("--max-price", dest="price_max")
        parser.add_argument("--sort", default="relevance")
        parser.add_argument("--fusion", choices=["rrf", "linear"], help="Override SEARCH_FUSION")
        parser.add_argument("--json", action="store_true", help="Print a JSON list on stdout")

    def handle(self, *args, **opts):
        if opts["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        image_bytes = None
        if opts["image"]:
            if not opts["image"].is_file():
                raise CommandError(f"Photo {opts['image']} does not exist.")
            image_bytes = opts["image"].read_bytes()
        params = {"q": opts["words"], "category": opts["category"] or "", "brand": opts["brand"],
                  "price_min": opts["price_min"] or "", "price_max": opts["price_max"] or "", "sort": opts["sort"],
                  "fusion": opts["fusion"] or ""}
        try:
            request = parse_search_request(params, image_bytes=image_bytes, per_page=opts["limit"])
            page = request.run()
        except SearchRequestError as exc:
            raise CommandError(exc.reason) from exc
        except SearchBackendError as exc:
            raise CommandError(f"Search is unavailable: {exc}") from exc

        rows = [
            {"id": p.pk, "external_id": p.external_id, "title": p.title, "score": round(p.search_score, 6), "explain": p.search_explain}
            for p in page.products
        ]
        if opts["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        console = Console(file=self.stdout, width=160)
        for notice in request.notices:
            console.print(f"[yellow]{notice}[/yellow]")
        table = Table(title=f"{page.total} results in {page.took_ms:.0f} ms ({page.method})")
        for col in ("#", "id", "external id", "title", "score", "score parts"):
            table.add_column(col)
        for i, r in enumerate(rows, 1):
            parts = ", ".join(f"{k} #{v['rank']} ({v['raw']:.3f})" for k, v in r["explain"].items() if k != "score")
            table.add_row(str(i), str(r["id"]), r["external_id"] or "", r["title"][:60], f"{r['score']:.4f}", parts)
        console.print(table)
