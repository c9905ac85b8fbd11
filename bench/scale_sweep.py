"""Search settings of a built scale index against recall@10, without rebuilding it.

    python bench/scale_sweep.py --n 1m --ef 512,768,1024,1536,2048 --rerank 40,100,200,400 \\
        --json var/bench/sweep-1m.json --markdown var/bench/sweep-1m.md

Opens ``VAR_DIR/scale-<n>`` (built by ``bench/scale.py``) once and, for every search beam ``ef``
(``expansion_search``, read when an index is opened) and every re-rank candidate count (how many
graph hits are re-scored with the stored vectors: ``_vectors.RERANK_MIN`` at k = 10), measures
recall@10 of each recall set of ``bench/scale.py`` against the exact neighbours saved with the
build, the mean time of one kNN search per field, and the engine's p50/p95 (wall and CPU) per
query type of the storefront's query mix (k = SEARCH_CANDIDATES).

``--diagnose`` first separates the three sources of lost recall, without the graph:

* **store precision**: exact search over the stored vectors (float16 from 250k products) against
  the float32 truth: the ceiling any graph setting can reach;
* **int8 quantisation**: exact search over int8 copies cast as the graph casts them (scale,
  centre, ``round(127 x)``), its top C re-ranked with the stored vectors, for each C: what
  a perfect graph over int8 vectors would give;
* **near-duplicates**: the gap between the 10th and 11th exact similarity, beside the store's
  score error, says how often the 10th neighbour is a coin toss.

The graph's own loss is then the engine's recall against the int8 ceiling at the same C.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import report_write  # noqa: E402
from bench.scale import (  # noqa: E402
    K,
    engine_params,
    engine_recall,
    load_truth,
    open_engine,
    query_mix,
    recall,
    recall_sets,
    setup_django,
    size_of,
    time_mix,
)

#: Rows of a store read at a time by the brute-force diagnosis.
CHUNK = 65_536


def _int8(v: np.ndarray, graph) -> np.ndarray:
    """``v`` as the graph stores it: centred, scaled, clipped, ``round(127 x)``, as float32 for BLAS."""
    x = np.asarray(v, np.float32)
    if graph.centre is not None:
        x = x - graph.centre
    return np.rint(np.clip(x * graph.scale, -1.0, 1.0) * 127.0)


def diagnose(backend, qs, truth: dict, counts: list[int]) -> dict:
    """Recall@10 of exact search over the store and of int8 exact search + re-rank of top C, per unfiltered set."""
    vi = backend._open().vectors
    out = {}
    for s, (field, queries, filt) in recall_sets(qs).items():
        if filt is not None:
            continue
        f = vi.fields[field]
        f._settle()
        t0 = time.perf_counter()
        top = max(counts)
        q = np.asarray(queries, np.float32)
        q8 = _int8(q, f.graph)
        q8 /= np.linalg.norm(q8, axis=1, keepdims=True)
        best_s = np.full((len(q), K + 1), -np.inf, np.float32)
        best_i = np.zeros((len(q), K + 1), np.int64)
        cand_s = np.full((len(q), top), -np.inf, np.float32)
        cand_i = np.zeros((len(q), top), np.int64)
        order = np.argsort(f.rows)
        for start in range(0, len(order), CHUNK):
            sel = order[start:start + CHUNK]
            ids, rows = f.ids[sel], f.rows[sel]
            x = np.asarray(f.store[rows[0]:rows[-1] + 1], np.float32)[rows - rows[0]]
            sims = q @ x.T
            x8 = _int8(x, f.graph)
            x8 /= np.maximum(np.linalg.norm(x8, axis=1, keepdims=True), 1e-12)
            sims8 = q8 @ x8.T
            for (bs, bi), (new_s, width) in (((best_s, best_i), (sims, K + 1)), ((cand_s, cand_i), (sims8, top))):
                all_s = np.concatenate([bs, new_s], axis=1)
                all_i = np.concatenate([bi, np.broadcast_to(ids, new_s.shape)], axis=1)
                pick = np.argpartition(-all_s, width - 1, axis=1)[:, :width]
                bs[:], bi[:] = np.take_along_axis(all_s, pick, 1), np.take_along_axis(all_i, pick, 1)
        srt = np.argsort(-best_s, axis=1)
        best_s, best_i = np.take_along_axis(best_s, srt, 1), np.take_along_axis(best_i, srt, 1)
        srt = np.argsort(-cand_s, axis=1)
        cand_i = np.take_along_axis(cand_i, srt, 1)
        row = {"field": field, "store_dtype": str(f.store_dtype), "store_exact": recall(best_i[:, :K].tolist(), truth[s]),
               "gap_10_11_median": float(np.median(best_s[:, K - 1] - best_s[:, K])),
               "gap_10_11_below_1e-3": float(np.mean(best_s[:, K - 1] - best_s[:, K] < 1e-3)),
               "int8_rerank": {}, "int8_alone": recall(cand_i[:, :K].tolist(), truth[s])}
        for c in counts:
            found = []
            for qi in range(len(q)):
                keys = cand_i[qi, :c]
                _, vecs = f.vectors(keys)
                found.append(keys[np.argsort(-(vecs @ q[qi]))][:K].tolist())
            row["int8_rerank"][str(c)] = recall(found, truth[s])
        row["seconds"] = time.perf_counter() - t0
        out[s] = row
        print(json.dumps({"diagnose": s, **row}), file=sys.stderr, flush=True)
    return out


def field_ms(backend, qs) -> dict:
    """Mean wall ms of one unfiltered kNN search (k = 10) per field."""
    out = {}
    for field, queries in (("text", qs.text), ("image", qs.photo_image), ("fused", qs.text_fused)):
        t0 = time.perf_counter()
        for q in queries:
            backend.search_vector(field, q, k=K)
        out[field] = (time.perf_counter() - t0) / len(queries) * 1000
    return out


def sweep(n: int, settings: list[tuple[int, int]], counts: list[int], do_diagnose: bool, out_json: Path | None) -> dict:
    """Rows of recall and time for each (ef, re-rank count) of ``settings``; ``counts`` are the diagnosis's C."""
    from search.backends import _vectors
    from search.hybrid.pipeline import rankings_blend, search_rankings

    record = json.loads((Path(engine_params(n)["INDEX_DIR"]) / "build.json").read_text())
    truth = load_truth(n)
    backend, qs, open_s = open_engine(n)
    vi = backend._open().vectors
    result = {"meta": {"date": datetime.now(UTC).isoformat(timespec="seconds"), "n": n, "open_s": open_s,
                       "manifest": record["manifest"], "load_start": os.getloadavg()[0]}, "rows": []}

    def save():
        if out_json:
            out_json.write_text(json.dumps(result, indent=1))

    if do_diagnose:
        result["diagnose"] = diagnose(backend, qs, truth, counts)
        save()
    mix = query_mix(qs)
    factor = _vectors.RERANK_FACTOR
    for ef, c in settings:
        for f in vi.fields.values():
            if f.graph is not None:
                f.graph.ef, f.graph.rerank = ef, c
        _vectors.RERANK_MIN = c
        load0 = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        rec = engine_recall(backend, qs, record["filters"], truth)
        recall_s, recall_cpu = time.perf_counter() - t0, time.process_time() - c0
        ms = field_ms(backend, qs)
        lat = time_mix(mix, lambda text, v: rankings_blend(search_rankings(backend=backend, text=text, vectors=v)))
        row = {"ef": ef, "rerank": c, "recall": rec, "field_ms": ms, "recall_s": recall_s, "recall_cpu_s": recall_cpu,
               "latency": {k: {"p50": x["engine"]["p50"], "p95": x["engine"]["p95"], "cpu_p50": x["cpu"]["p50"],
                               "cpu_p95": x["cpu"]["p95"]} for k, x in lat.items()},
               "load": [load0, os.getloadavg()[0]]}
        result["rows"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        save()
    _vectors.RERANK_MIN, _vectors.RERANK_FACTOR = 40, factor
    result["meta"]["load_end"] = os.getloadavg()[0]
    save()
    return result


def markdown(result: dict) -> str:
    from bench.scale_report import _n, _table

    meta = result["meta"]
    out = [f"Sweep of search settings on the saved {_n(meta['n'])} index, {meta['date']} (load average {meta['load_start']:.1f} at the "
           f"start, {meta.get('load_end', float('nan')):.1f} at the end)", ""]
    if result.get("diagnose"):
        counts = list(next(iter(result["diagnose"].values()))["int8_rerank"])
        rows = [[s, d["store_dtype"], f"{d['store_exact']:.3f}", f"{d['int8_alone']:.3f}", *(f"{d['int8_rerank'][c]:.3f}" for c in counts),
                 f"{d['gap_10_11_median']:.4f}", f"{d['gap_10_11_below_1e-3'] * 100:.0f} %"] for s, d in result["diagnose"].items()]
        out += ["**Where recall is lost** (no graph: exact search over the store; exact search over int8 copies, alone and with its "
                "top C re-ranked by the store; the gap between the 10th and 11th exact similarity)", ""]
        out += _table(["set", "store", "store exact", "int8 exact", *(f"int8 top {c} re-ranked" for c in counts), "gap 10-11 median",
                       "gap < 0.001"], rows)
    sets = list(result["rows"][0]["recall"]) if result["rows"] else []
    kinds = list(result["rows"][0]["latency"]) if result["rows"] else []
    rows = [[r["ef"], r["rerank"], *(f"{r['recall'][s]:.3f}" for s in sets), *(f"{r['field_ms'][f]:.1f}" for f in ("text", "image", "fused")),
             *(f"{r['latency'][k]['p50']:.1f} / {r['latency'][k]['p95']:.1f} ({r['latency'][k]['cpu_p50']:.1f} / {r['latency'][k]['cpu_p95']:.1f})"
               for k in kinds), " / ".join(f"{x:.1f}" for x in r["load"])] for r in result["rows"]]
    out += ["**Recall@10 and time per setting** (ef = search beam; re-rank = graph candidates re-scored exactly at k = 10; kNN ms = "
            "one unfiltered k = 10 search, wall; query mix = engine p50 / p95 wall ms (CPU ms), k = SEARCH_CANDIDATES)", ""]
    out += _table(["ef", "re-rank", *sets, "text kNN ms", "image kNN ms", "fused kNN ms", *(f"{k} p50 / p95 (CPU)" for k in kinds), "load"], rows)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="1m", help="size of the saved scale index (1k, 10k, 100k, 1m)")
    parser.add_argument("--ef", default="512,768,1024,1536,2048", help="search beams to try")
    parser.add_argument("--rerank", default="40,100,200,400", help="graph candidates re-ranked exactly at k = 10")
    parser.add_argument("--pairs", help="only these ef:re-rank settings, in this order, e.g. 2048:200,1024:100")
    parser.add_argument("--diagnose", action="store_true", help="first separate store, int8 and near-duplicate losses (brute force)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--from-json", type=Path, help="print the tables of a saved --json run")
    args = parser.parse_args(argv)
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    else:
        setup_django()
        counts = [int(x) for x in args.rerank.split(",")]
        settings = ([tuple(int(y) for y in x.split(":")) for x in args.pairs.split(",")] if args.pairs
                    else [(int(ef), c) for ef in args.ef.split(",") for c in counts])
        result = sweep(size_of(args.n), settings, counts, args.diagnose, args.json)
    report_write(markdown(result), args, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
