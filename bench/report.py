"""Tables of the benchmark results (rich), with ratios to the baseline run beside it."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _baseline(name: str) -> str | None:
    return None if name.endswith("-lancedb") else f"{name}-lancedb"


def print_report(results: dict, meta: dict, targets: dict, console: Console | None = None) -> None:
    console = console or Console(width=170)
    console.print(f"[bold]Benchmarks[/bold] {meta['date']} on {meta['machine']}")

    table = Table(title="Query latency (ms): total = encode + search; text never cached, photo decoded and encoded")
    for col in ("scenario", "engine", "products", "query", "p50", "p95", "p99", "encode p50", "search p50", "search p95",
                "search p95 / LanceDB", "CPU p50", "CPU p95"):
        table.add_column(col, justify="right" if col not in ("scenario", "engine", "query") else "left")
    for name, r in results.items():
        base = results.get(_baseline(name) or "", {})
        for kind, lat in r.get("latency", {}).items():
            ratio = ""
            if base and kind in base.get("latency", {}):
                ratio = f"{lat['search']['p95'] / base['latency'][kind]['search']['p95']:.2f}x"
            t = lat["total"]
            table.add_row(name, r["engine"], f"{r['products']:,}", kind, f"{t['p50']:.1f}", f"{t['p95']:.1f}", f"{t['p99']:.1f}",
                          f"{lat['encode']['p50']:.1f}", f"{lat['search']['p50']:.1f}", f"{lat['search']['p95']:.1f}", ratio,
                          f"{lat['cpu']['p50']:.1f}", f"{lat['cpu']['p95']:.1f}")
        for kind, lat in r.get("latency_selector", {}).items():
            t = lat["total"]
            table.add_row(name, "product_search", f"{r['products']:,}", kind, f"{t['p50']:.1f}", f"{t['p95']:.1f}", f"{t['p99']:.1f}",
                          f"{lat['encode']['p50']:.1f}", f"{lat['search']['p50']:.1f}", f"{lat['search']['p95']:.1f}", "",
                          f"{lat['cpu']['p50']:.1f}", f"{lat['cpu']['p95']:.1f}")
    console.print(table)

    table = Table(title="Indexing, memory, size")
    for col in ("scenario", "engine", "products", "indexing", "products/s", "open (s)", "peak RSS (MB)", "index on disk (MB)", "wall (s)"):
        table.add_column(col, justify="left" if col in ("scenario", "engine", "indexing") else "right")
    for name, r in results.items():
        ix = r["index"]
        table.add_row(name, r["engine"], f"{r['products']:,}", ix["how"], f"{ix['products_per_s']:.1f}",
                      f"{r['open_s']:.2f}" if "open_s" in r else "-", f"{r['peak_rss_mb']:.0f}", f"{r['index_mb']:.1f}",
                      f"{r.get('wall_s', 0):.0f}")
    console.print(table)

    table = Table(title="Targets")
    for col in ("target", "measured", "met"):
        table.add_column(col)
    for label, value, limit, higher in target_rows(results, targets):
        met = value >= limit if higher else value <= limit
        table.add_row(label, f"{value:.1f}", "[green]yes[/green]" if met else "[red]no[/red]")
    console.print(table)


def target_rows(results: dict, targets: dict) -> list[tuple[str, float, float, bool]]:
    rows = []
    big = results.get("synthetic-100k")
    if big and "text" in big["latency"]:
        rows.append((f"text p95 incl. encoding at 100k <= {targets['text_p95_ms_100k']:.0f} ms",
                     big["latency"]["text"]["total"]["p95"], targets["text_p95_ms_100k"], False))
    for name in ("flipkart", "synthetic-100k"):
        r = results.get(name)
        if r and "photo" in r["latency"]:
            rows.append((f"photo p95 incl. decoding + encoding, {name} <= {targets['photo_p95_ms']:.0f} ms",
                         r["latency"]["photo"]["total"]["p95"], targets["photo_p95_ms"], False))
    fk = results.get("flipkart")
    if fk:
        rows.append((f"indexing with photos on CPU >= {targets['index_products_per_s']:.0f} products/s",
                     fk["index"]["products_per_s"], targets["index_products_per_s"], True))
    return rows


def markdown(results: dict, meta: dict, targets: dict) -> str:
    """The same tables as Markdown (for ``bench/RESULTS.md``)."""
    lines = [f"Run {meta['date']} on {meta['machine']}.", "",
             "| scenario | engine | products | query | p50 | p95 | p99 | encode p50 | search p50 | search p95 | search p95 / LanceDB | CPU p50 | CPU p95 |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        base = results.get(_baseline(name) or "", {})
        for label, block in (("engine" if not name.endswith("lancedb") else "lancedb", r.get("latency", {})),
                             ("product_search", r.get("latency_selector", {}))):
            for kind, lat in block.items():
                ratio = ""
                if label != "product_search" and base and kind in base.get("latency", {}):
                    ratio = f"{lat['search']['p95'] / base['latency'][kind]['search']['p95']:.2f}x"
                t = lat["total"]
                lines.append(f"| {name} | {r['engine'] if label != 'product_search' else 'product_search'} | {r['products']:,} | {kind} | "
                             f"{t['p50']:.1f} | {t['p95']:.1f} | {t['p99']:.1f} | {lat['encode']['p50']:.1f} | {lat['search']['p50']:.1f} | "
                             f"{lat['search']['p95']:.1f} | {ratio} | {lat['cpu']['p50']:.1f} | {lat['cpu']['p95']:.1f} |")
    lines += ["", "| scenario | engine | products | indexing | products/s | open (s) | peak RSS (MB) | index on disk (MB) |",
              "|---|---|---:|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        ix = r["index"]
        lines.append(f"| {name} | {r['engine']} | {r['products']:,} | {ix['how']} | {ix['products_per_s']:.1f} | "
                     f"{r.get('open_s', float('nan')):.2f} | {r['peak_rss_mb']:.0f} | {r['index_mb']:.1f} |")
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for label, value, limit, higher in target_rows(results, targets):
        met = value >= limit if higher else value <= limit
        lines.append(f"| {label} | {value:.1f} | {'yes' if met else 'no'} |")
    return "\n".join(lines) + "\n"
