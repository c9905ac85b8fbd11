"""Markdown tables of a ``bench/scale.py`` run."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, load average {load} (1/5/15 min)"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(head: list[str], rows: list[list]) -> list[str]:
    return [_row(head), _row(["---"] * len(head)), *(_row(r) for r in rows), ""]


def _n(n) -> str:
    n = int(n)
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def markdown(result: dict) -> str:
    meta = result["meta"]
    out = [f"Scale benchmark, {meta['date']}; machine at the start: {meta['machine']}", ""]
    if meta.get("machine_end"):
        out[-1:] = [f"At the end: {meta['machine_end']}", ""]
    if "sweep" in result:
        rows = [[r["field"], _n(r["n"]), r["engine"], r["M"], r["ef_construction"], r["ef"], f"{r['build_per_s']:.0f}",
                 f"{r['build_per_cpu_s']:.0f}", f"{r['query_ms']:.2f}", f"{r['recall']:.3f}"] for r in result["sweep"]["rows"]]
        out += _table(["field", "n", "graph", "M", "ef_construction", "ef", "inserts/s", "inserts/CPU-s", "query ms", "recall@10"], rows)
        return "\n".join(out)
    built = result["sizes"]
    sizes = {n: r for n, r in built.items() if "serve" in r}  # a run in progress has sizes not served yet
    rows = []
    for n, r in built.items():
        b, lb = r["build"], (r.get("lancedb") or {}).get("build")
        rows.append([_n(n), f"{b['products_per_s']:.0f}", f"{b['products_per_cpu_s']:.0f}", f"{b['engine_s']:.1f}", f"{b['peak_rss_mb']:.0f}",
                     f"{b['disk_mb']:.0f}", f"{b['disk_vectors_mb']:.0f}", " / ".join(f"{x:.1f}" for x in b["load_average"]),
                     f"{int(n) / lb['seconds']:.0f}" if lb else "-", f"{lb['peak_rss_mb']:.0f}" if lb else "-", f"{lb['disk_mb']:.0f}" if lb else "-"])
    out += ["**Build** (vectors given; products/s = products / engine seconds; load average before / after)", ""]
    out += _table(["products", "products/s", "products/CPU-s", "engine s", "peak RSS MB", "disk MB", "of it vectors MB", "load",
                   "LanceDB products/s", "LanceDB peak RSS MB", "LanceDB disk MB"], rows)
    rows = []
    for n, r in sizes.items():
        lat, lance = r["serve"]["latency"], (r.get("lancedb") or {}).get("latency", {})
        for kind, x in lat.items():
            e, w = x["engine"], x["with_encoding"]
            le = lance.get(kind, {}).get("engine")
            rows.append([_n(n), kind, f"{e['p50']:.1f}", f"{e['p95']:.1f}", f"{e['p99']:.1f}", f"{w['p50']:.1f}", f"{w['p95']:.1f}",
                         f"{w['p99']:.1f}", f"{x['cpu']['p50']:.1f}", f"{le['p50']:.1f}" if le else "-", f"{le['p95']:.1f}" if le else "-",
                         f"{le['p95'] / e['p95']:.1f}x" if le else "-"])
    out += ["**Query latency** (ms; engine = BM25 + kNN per retriever + fusion, SEARCH_CANDIDATES hits each; incl. encoding adds "
            "each query's measured encoding time; LanceDB at the recall below)", ""]
    out += _table(["products", "query", "engine p50", "p95", "p99", "incl. encoding p50", "p95", "p99", "engine CPU p50",
                   "LanceDB p50", "LanceDB p95", "LanceDB p95 / ours"], rows)
    sets = list(next(iter(sizes.values()))["serve"]["recall"])
    rows = []
    for n, r in sizes.items():
        lance = r.get("lancedb") or {}
        searched = r["serve"].get("search", {})  # ef is the tier's when the index is opened, not the build's
        rows.append([_n(n), "embedded", *(f"{r['serve']['recall'][s]:.3f}" for s in sets), ", ".join(
            f"{f}: M={m.get('connectivity', '-')} ef_c={m.get('expansion_add', '-')} "
            f"ef={searched.get(f, {}).get('ef', m.get('expansion_search', '-'))}"
            f"{' re-rank ' + str(searched[f]['rerank']) if searched.get(f, {}).get('rerank') else ''} {m.get('store_dtype', '')}"
            for f, m in r["build"]["manifest"].items())])
        if lance.get("recall"):
            c = lance["chosen"]
            rows.append([_n(n), "LanceDB", *(f"{lance['recall'][s]:.3f}" for s in sets), f"nprobes={c['nprobes']} ef={c['ef']} refine={c['refine_factor']}"])
    f = next(iter(sizes.values()))["build"]["filters"]
    out += [f"**Recall@10** against exact search (filters: price <= {f['price']['price_max']:.0f}, 20 %; category {f['category']['category']!r})", ""]
    out += _table(["products", "engine", *sets, "settings"], rows)
    rows = []
    for n, r in sizes.items():
        base = r["serve"].get("memory_before_open") or {"rss": 0.0, "pss": 0.0, "uss": 0.0}

        def fmt(m, base=base):
            growth = f"+{m['rss'] - base['rss']:.0f} / +{m['pss'] - base['pss']:.0f} / +{m['uss'] - base['uss']:.0f}"
            return f"{m['rss']:.0f} / {m['pss']:.0f} / {m['uss']:.0f} ({growth})"

        so, ss = r["serve"]["memory_open"], r["serve"]["memory_served"]
        rows.append([_n(n), "1 (serve)", fmt(so), fmt(ss), f"{ss['peak_rss']:.0f}", "-"])
        for rd in r.get("readers", []):
            per = rd["per_process"]
            rows.append([_n(n), f"{rd['processes']} readers", "-", " ; ".join(fmt(p) for p in per), "-",
                         f"{rd['sum_pss']:.0f} (+{rd['sum_pss'] - len(per) * base['pss']:.0f})"])
    out += ["**Memory** (MB per process: RSS / PSS / USS, and in brackets the index's share: minus the same process before "
            f"opening it, {base['rss']:.0f} / {base['pss']:.0f} / {base['uss']:.0f} MB of Python, Django, torch and ONNX Runtime "
            "imports; models not loaded, query vectors cached. PSS splits shared pages between the processes mapping them; USS is private)", ""]
    out += _table(["products", "processes", "after open", "after the query mix", "peak RSS", "sum of PSS"], rows)
    return "\n".join(out)
