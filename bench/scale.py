"""Scale benchmark: the embedded engine at 1k / 10k / 100k / 1M products, beside LanceDB.

    python bench/scale.py --sizes 1k,10k,100k,1m --lancedb 1k,10k,100k,1m --readers 1,2,4 \\
        --readers-sizes 1k,10k,100k --json var/bench/scale.json --markdown var/bench/scale.md
    python bench/scale.py --sweep 100k        # HNSW build parameters against recall@10 (usearch and hnswlib)
    python bench/scale_sweep.py --n 1m        # search beam and re-rank count on the saved index, no rebuild

Catalogs are ``bench/synthetic.py``'s (real words recombined) with vectors drawn around real
MiniLM / EfficientNet / fused vectors of the shared data (``bench/anchors.py``). Each size is
built once into ``VAR_DIR/scale-<n>`` (delete it to time the build again) by a rebuild with the
vectors given, as ``reindex`` does for unchanged products; exact top-10 neighbours of the real
query vectors are computed during generation (filtered too) for recall@10. Every step runs in its
own process, so each peak RSS is its own. Query timings are the engine's alone (``search_rankings``
+ ``rankings_blend``, SEARCH_CANDIDATES per retriever) from cached query vectors; "incl.
encoding" adds each query's own measured encoding time (``bench/anchors.py``, one thread).
LanceDB answers the same retrievers on the same rows, tuned to at least our recall@10.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
K = 10
#: LanceDB's vector index above 20k rows: IVF_FLAT (k-means partitions of the full vectors). Its
#: IVF_HNSW_SQ (``make bench``'s) took 670 s to build 100k products here (bench/RESULTS.md), too
#: long for a 1M run on two shared cores; IVF_FLAT reaches any recall by probing more partitions.
LANCE_INDEX = "IVF_FLAT"
#: LanceDB settings tried, cheapest first, until recall@10 reaches ours (nprobes, ef, refine_factor).
LANCE_GRID = ((5, None, 0), (10, None, 0), (20, None, 0), (40, None, 0), (80, None, 0), (160, None, 0), (320, None, 0))


def setup_django() -> None:
    from bench.run import setup_django as setup

    os.environ.setdefault("RUST_LOG", "error")  # LanceDB's deprecation warnings, one per query

    setup()


def size_of(text: str) -> int:
    text = text.strip().lower()
    return int(float(text[:-1]) * {"k": 1_000, "m": 1_000_000}[text[-1]]) if text[-1] in "km" else int(text)


def memory() -> dict:
    """This process's memory (MB): RSS, PSS (shared pages split between their users), USS (private), peak RSS."""
    import psutil

    m = psutil.Process().memory_full_info()
    return {"rss": m.rss / 1e6, "pss": m.pss / 1e6, "uss": m.uss / 1e6, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def material():
    from django.conf import settings

    from bench.anchors import load_anchors, load_queries

    cache = Path(settings.VAR_DIR) / "real-vectors"
    return load_anchors(Path(settings.CATALOG_DIR), cache), load_queries(Path(settings.CATALOG_DIR), cache)


def filters_for(vocab) -> dict:
    """Two filters: price <= 1099 (20 % of products) and the top-level category nearest 3 %."""
    from collections import Counter

    tops = Counter(c[0] for c in vocab.categories if c)
    total = sum(tops.values())
    category = min(tops, key=lambda c: abs(tops[c] / total - 0.03))
    return {"price": {"price_max": 1099.0}, "category": {"category": category}}


def recall_sets(qs) -> dict:
    """Recall query sets: name -> (field, query vectors, filter name or None)."""
    return {
        "text": ("text", qs.text, None), "text|price": ("text", qs.text, "price"), "text|category": ("text", qs.text, "category"),
        "image": ("image", qs.photo_image, None), "image|price": ("image", qs.photo_image, "price"),
        "fused": ("fused", np.concatenate([qs.text_fused[:100], qs.photo_fused]), None),
    }


class Truth:
    """Exact top-``K`` ids per query of every recall set, accumulated batch by batch."""

    def __init__(self, sets: dict):
        self.sets = sets
        self.ids = {s: np.zeros((len(q), 0), np.int64) for s, (_, q, _) in sets.items()}
        self.sims = {s: np.zeros((len(q), 0), np.float32) for s, (_, q, _) in sets.items()}

    def add(self, ids: np.ndarray, vectors: dict, masks: dict) -> None:
        for s, (field, q, filt) in self.sets.items():
            sims = q @ vectors[field].T
            if filt is not None:
                sims[:, ~masks[filt]] = -np.inf
            all_s = np.concatenate([self.sims[s], sims], axis=1)
            all_i = np.concatenate([self.ids[s], np.broadcast_to(ids, sims.shape)], axis=1)
            top = np.argpartition(-all_s, min(K, all_s.shape[1]) - 1, axis=1)[:, :K]
            self.sims[s], self.ids[s] = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)

    def top(self, s: str) -> list[set[int]]:
        return [{int(i) for i, v in zip(ids, sims, strict=True) if np.isfinite(v)} for ids, sims in zip(self.ids[s], self.sims[s], strict=True)]


def recall(found: list[list[int]], truth: list[set[int]]) -> float:
    return float(np.mean([len(set(f[:K]) & t) / max(len(t), 1) for f, t in zip(found, truth, strict=True)]))


# -- workers ------------------------------------------------------------------------------------------
def engine_params(n: int) -> dict:
    from django.conf import settings

    return {"INDEX_DIR": Path(settings.VAR_DIR) / f"scale-{n}", "INDEX": "products", "FIELD_BOOSTS": settings.SEARCH_FIELD_BOOSTS}


def worker_build(n: int) -> dict:
    """Build ``scale-<n>`` (or reuse it); the record holds timings, memory, disk and the exact neighbours."""
    from django.conf import settings

    from bench.synthetic import SEED, load_vocabulary, synthetic_batches
    from search.backends.base import SearchDocument
    from search.backends.embedded import EmbeddedSearchBackend

    params = engine_params(n)
    root = Path(params["INDEX_DIR"])
    if (root / "build.json").exists() and (root / "products").exists():
        return json.loads((root / "build.json").read_text())
    shutil.rmtree(root, ignore_errors=True)
    anchors, qs = material()
    vocab = load_vocabulary(Path(settings.CATALOG_DIR))
    filters = filters_for(vocab)
    truth = Truth(recall_sets(qs))
    dims = {"text": anchors.text.shape[1], "image": anchors.image.shape[1], "fused": anchors.fused.shape[1]}
    writer = EmbeddedSearchBackend(params, dims)
    engine_s = engine_cpu = 0.0
    load = [os.getloadavg()[0]]
    started = time.perf_counter()
    with writer.rebuild(size_hint=n) as builder:
        for b in synthetic_batches(vocab, n, anchors=anchors):
            price = 100.0 + np.arange(len(b.ids)) % 5000
            docs = [SearchDocument(id=int(b.ids[i]), title=b.titles[i], brand=b.brands[i], category_path=b.categories[i],
                                   description=b.descriptions[i], price=float(price[i]), vectors={k: v[i] for k, v in b.vectors.items()})
                    for i in range(len(b.ids))]
            truth.add(b.ids, b.vectors, {"price": price <= filters["price"]["price_max"],
                                         "category": np.array([bool(c) and c[0] == filters["category"]["category"] for c in b.categories])})
            t0, c0 = time.perf_counter(), time.process_time()
            builder.add_bulk(docs)
            engine_s += time.perf_counter() - t0
            engine_cpu += time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
    engine_s += time.perf_counter() - t0  # the final flush, base write and alias swap
    engine_cpu += time.process_time() - c0
    load.append(os.getloadavg()[0])
    np.savez(root / "truth.npz", **{s: truth.ids[s] for s in truth.sets}, **{f"{s}__sims": truth.sims[s] for s in truth.sets})
    live = (root / "products").resolve()
    record = {
        "n": n, "seed": SEED, "built": datetime.now(UTC).isoformat(timespec="seconds"), "wall_s": time.perf_counter() - started,
        "engine_s": engine_s, "engine_cpu_s": engine_cpu, "products_per_s": n / engine_s, "products_per_cpu_s": n / engine_cpu,
        "peak_rss_mb": memory()["peak_rss"], "disk_mb": sum(p.stat().st_size for p in live.rglob("*") if p.is_file()) / 1e6,
        "disk_vectors_mb": sum(p.stat().st_size for p in (live / "vectors").rglob("*") if p.is_file()) / 1e6,
        "load_average": load, "filters": filters, "manifest": json.loads((live / "vectors" / "manifest.json").read_text())["fields"],
    }
    (root / "build.json").write_text(json.dumps(record))
    return record


def load_truth(n: int) -> dict:
    root = Path(engine_params(n)["INDEX_DIR"])
    with np.load(root / "truth.npz") as z:
        return {s: [{int(i) for i, v in zip(ids, sims, strict=True) if np.isfinite(v)} for ids, sims in zip(z[s], z[f"{s}__sims"], strict=True)]
                for s in z.files if not s.endswith("__sims")}


def query_mix(qs) -> dict:
    """kind -> [(text, QueryVectors, encode_ms)] for text, photo and photo+text queries."""
    from search.embedding.encoding import QueryVectors

    return {
        "text": [(t, QueryVectors(text=qs.text[i], fused=qs.text_fused[i]), float(qs.text_encode_ms[i])) for i, t in enumerate(qs.texts)],
        "photo": [("", QueryVectors(image=qs.photo_image[i], fused=qs.photo_fused[i]), float(qs.photo_encode_ms[i]))
                  for i in range(len(qs.photo_image))],
        "photo+text": [(t, QueryVectors(text=qs.both_text[i], image=qs.photo_image[i], fused=qs.both_fused[i]), float(qs.both_encode_ms[i]))
                       for i, t in enumerate(qs.photo_text)],
    }


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99))}


def time_mix(mix: dict, run) -> dict:
    """kind -> engine-only and incl.-encoding percentiles (ms) of ``run(text, vectors)`` over ``mix``."""
    out = {}
    for kind, items in mix.items():
        for text, vectors, _ in items[:10]:  # warm-up, not timed
            run(text, vectors)
        engine, cpu = [], []
        for text, vectors, _ in items:
            t0, c0 = time.perf_counter(), time.process_time()
            run(text, vectors)
            engine.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        enc = [e for _, _, e in items]
        out[kind] = {"engine": percentiles(engine), "with_encoding": percentiles([a + b for a, b in zip(engine, enc, strict=True)]),
                     "encode": percentiles(enc), "cpu": percentiles(cpu)}
    return out


def open_engine(n: int):
    from search.backends.embedded import EmbeddedSearchBackend

    anchors, qs = material()
    dims = {"text": anchors.text.shape[1], "image": anchors.image.shape[1], "fused": anchors.fused.shape[1]}
    t0 = time.perf_counter()
    backend = EmbeddedSearchBackend(engine_params(n), dims)
    backend.count()
    return backend, qs, time.perf_counter() - t0


def engine_recall(backend, qs, filters: dict, truth: dict) -> dict:
    from search.backends.base import SearchFilters

    out = {}
    for s, (field, queries, filt) in recall_sets(qs).items():
        f = SearchFilters(**filters[filt]) if filt else None
        found = [[h.id for h in backend.search_vector(field, q, k=K, filters=f)] for q in queries]
        out[s] = recall(found, truth[s])
    return out


def worker_serve(n: int) -> dict:
    from search.hybrid.pipeline import rankings_blend, search_rankings

    record = json.loads((Path(engine_params(n)["INDEX_DIR"]) / "build.json").read_text())
    material()  # loaded before the baseline: the query vectors are not the engine's memory
    before = memory()
    backend, qs, open_s = open_engine(n)
    after_open = memory()
    latency = time_mix(query_mix(qs), lambda text, v: rankings_blend(search_rankings(backend=backend, text=text, vectors=v)))
    rec = engine_recall(backend, qs, record["filters"], load_truth(n))
    searched = {name: {"ef": f.graph.ef, "rerank": f.graph.rerank} for name, f in backend._open().vectors.fields.items() if f.graph is not None}
    return {"open_s": open_s, "search": searched, "memory_before_open": before, "memory_open": after_open, "memory_served": memory(),
            "latency": latency, "recall": rec}


def worker_reader(n: int, ready: Path, stop: Path) -> dict:
    """Open the index, run the query mix once, say so, and stay alive until told (memory is read from outside)."""
    from search.hybrid.pipeline import rankings_blend, search_rankings

    backend, qs, _ = open_engine(n)
    for items in query_mix(qs).values():
        for text, v, _ in items:
            rankings_blend(search_rankings(backend=backend, text=text, vectors=v))
    ready.write_text(str(os.getpid()))
    while not stop.exists():
        time.sleep(0.2)
    return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return pid > 0


def lancedb_build(n: int) -> dict:
    """LanceDB's table of the same rows, built once into ``scale-<n>-lancedb`` (a finished build is reused)."""
    from django.conf import settings

    from bench import lance

    folder = Path(settings.VAR_DIR) / f"scale-{n}-lancedb"
    record_file, busy = folder / "build.json", folder / ".building"
    while busy.exists() and not record_file.exists() and _alive(int(busy.read_text() or 0)):
        time.sleep(10)  # another process is building it (a 1M table takes tens of minutes)
    if not record_file.exists():
        anchors, _ = material()
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        busy.write_text(str(os.getpid()))
        gen = [0.0, 0.0]  # wall and CPU seconds spent generating the rows, not LanceDB's

        def parts():
            source = lance.synthetic_parts(Path(settings.CATALOG_DIR), n, anchors=anchors)
            while True:
                g0, gc0 = time.perf_counter(), time.process_time()
                part = next(source, None)
                gen[0] += time.perf_counter() - g0
                gen[1] += time.process_time() - gc0
                if part is None:
                    return
                yield part

        t0, c0 = time.perf_counter(), time.process_time()
        lance.build(folder, parts(), LANCE_INDEX)
        build = {"index": LANCE_INDEX if n > lance.EXACT_MAX else "none (flat scan)", "seconds": time.perf_counter() - t0 - gen[0],
                 "cpu_s": time.process_time() - c0 - gen[1], "peak_rss_mb": memory()["peak_rss"],
                 "vectors": "float16" if n >= lance.FLOAT16_MIN else "float32", "load_average": os.getloadavg()[0]}
        record_file.write_text(json.dumps(build))
    build = json.loads(record_file.read_text())
    build["disk_mb"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    return build


def worker_lancedb(n: int, target: float) -> dict:
    """LanceDB on the same rows: build (cached in ``scale-<n>-lancedb``), tune to recall >= ``target``, time."""
    from django.conf import settings

    from bench import lance
    from search.hybrid.pipeline import rankings_blend

    build = lancedb_build(n)
    _, qs = material()
    table = lance.open_table(Path(settings.VAR_DIR) / f"scale-{n}-lancedb")
    indexed = n > lance.EXACT_MAX
    truth = load_truth(n)
    filters = json.loads((Path(engine_params(n)["INDEX_DIR"]) / "build.json").read_text())["filters"]
    where = {"price": f"price <= {filters['price']['price_max']}", "category": f"category = '{filters['category']['category']}'"}
    chosen, tried = None, []
    for nprobes, ef, refine in (LANCE_GRID if indexed else ((0, None, 0),)):
        rec = {}
        for s, (field, queries, filt) in recall_sets(qs).items():
            found = [[h.id for h in lance.knn(table, f"{field}_vector", q, K, indexed=indexed, nprobes=nprobes, ef=ef, refine_factor=refine,
                                              where=where[filt] if filt else None)] for q in queries]
            rec[s] = recall(found, truth[s])
        tried.append({"nprobes": nprobes, "ef": ef, "refine_factor": refine, "recall": rec})
        chosen = tried[-1]
        if min(rec.values()) >= target:
            break
    k = settings.SEARCH_CANDIDATES
    opts = {"indexed": indexed, "nprobes": chosen["nprobes"], "ef": chosen["ef"], "refine_factor": chosen["refine_factor"]}

    def run(text, v):
        rankings = {}
        if text:
            rankings["bm25"] = lance.fts(table, text, k)
            rankings["text_knn"] = lance.knn(table, "text_vector", v.text, k, **opts)
        if v.image is not None:
            rankings["image_knn"] = lance.knn(table, "image_vector", v.image, k, **opts)
        rankings["fused_knn"] = lance.knn(table, "fused_vector", v.fused, k, **opts)
        rankings_blend(rankings)

    latency = time_mix(query_mix(qs), run)
    return {"build": build, "tuning": tried, "chosen": chosen, "recall": chosen["recall"], "latency": latency, "memory_served": memory()}


def worker_sweep(n: int) -> dict:
    """HNSW parameters against recall@10 and speed on ``n`` products' text and image vectors:
    usearch int8 + exact re-rank (the engine's graph) beside hnswlib float32, same data, same threads."""
    import hnswlib
    from django.conf import settings
    from usearch.index import Index

    from bench.synthetic import SEED, realistic_vectors
    from search.backends import _vectors
    from search.backends._hnsw import Graph, int8_scale

    anchors, qs = material()
    rng = np.random.default_rng(SEED)
    vecs = {"text": [], "image": []}
    for start in range(0, n, 20_000):
        v = realistic_vectors(rng, anchors, min(20_000, n - start))
        vecs["text"].append(v["text"])
        vecs["image"].append(v["image"])
    rows = []
    for field, queries in (("text", qs.text), ("image", qs.photo_image)):
        x = np.concatenate(vecs[field])
        ids = np.arange(1, n + 1, dtype=np.int64)
        exact = np.argsort(-(queries @ x.T), axis=1)[:, :K] + 1
        truth = [set(r.tolist()) for r in exact]
        for m, ef_add in ((16, 64), (16, 128), (32, 128)):
            for engine in ("usearch-int8+rerank", "hnswlib-float32"):
                t0, c0 = time.perf_counter(), time.process_time()
                if engine.startswith("usearch"):
                    g = Graph(Index(ndim=x.shape[1], metric="cos", dtype="i8", connectivity=m, expansion_add=ef_add), int8_scale(x[:5000]), 64)
                    g.add(ids, x)
                else:
                    h = hnswlib.Index(space="ip", dim=x.shape[1])
                    h.init_index(max_elements=n, M=m, ef_construction=ef_add)
                    h.add_items(x, ids, num_threads=os.cpu_count())
                build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
                for ef in (32, 64, 128, 256):
                    found, t0 = [], time.perf_counter()
                    for q in queries:
                        if engine.startswith("usearch"):
                            g.ef = ef
                            keys = g.search(q, max(_vectors.RERANK_MIN, int(_vectors.RERANK_FACTOR * K)))
                            sims = x[keys - 1] @ q
                            found.append(keys[np.argsort(-sims)][:K].tolist())
                        else:
                            h.set_ef(ef)
                            found.append(h.knn_query(q[None, :], k=K, num_threads=1)[0][0].tolist())
                    q_ms = (time.perf_counter() - t0) / len(queries) * 1000
                    rows.append({"field": field, "n": n, "engine": engine, "M": m, "ef_construction": ef_add, "ef": ef,
                                 "build_per_s": n / build_s, "build_per_cpu_s": n / build_cpu, "query_ms": q_ms, "recall": recall(found, truth)})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"rows": rows, "load_average": os.getloadavg()[0], "var_dir": str(settings.VAR_DIR)}


WORKERS = {"build": worker_build, "serve": worker_serve, "sweep": worker_sweep, "lancedb-build": lancedb_build}


# -- the parent -------------------------------------------------------------------------------------------
def run_worker(kind: str, n: int, *extra: str, check: bool = True) -> dict | None:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        print(f"{kind} {n:,} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--n", str(n), "--worker-out", out.name, *extra],
                              cwd=ROOT, check=False)
        if proc.returncode != 0:
            if check:
                raise SystemExit(f"{kind} {n} failed with exit code {proc.returncode}")
            return None
        return json.loads(Path(out.name).read_text())


def readers(n: int, count: int) -> dict:
    """``count`` reader processes on one index at once: each one's RSS / PSS / USS (MB) and the machine's used memory."""
    import psutil

    folder = Path(tempfile.mkdtemp(prefix="readers-"))
    stop = folder / "stop"
    used0 = psutil.virtual_memory().used
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", "reader", "--n", str(n),
                               "--ready", str(folder / f"ready-{i}"), "--stop", str(stop)], cwd=ROOT) for i in range(count)]
    try:
        while not all((folder / f"ready-{i}").exists() for i in range(count)):
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit("a reader process failed")
            time.sleep(0.5)
        per = []
        for p in procs:
            m = psutil.Process(p.pid).memory_full_info()
            per.append({"rss": m.rss / 1e6, "pss": m.pss / 1e6, "uss": m.uss / 1e6})
        used = (psutil.virtual_memory().used - used0) / 1e6
    finally:
        stop.write_text("stop")
        for p in procs:
            p.wait(timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
    return {"processes": count, "per_process": per, "sum_rss": sum(p["rss"] for p in per), "sum_pss": sum(p["pss"] for p in per),
            "sum_uss": sum(p["uss"] for p in per), "machine_used_delta": used}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1k,10k,100k", help="catalog sizes, e.g. 1k,10k,100k,1m")
    parser.add_argument("--lancedb", default="1k,10k,100k", help="sizes also run on LanceDB ('' for none; a finished LanceDB build is reused)")
    parser.add_argument("--readers", default="1,2,4", help="reader process counts for the memory table ('' for none)")
    parser.add_argument("--readers-sizes", help="sizes the reader processes run at (default: every size)")
    parser.add_argument("--sweep", help="only sweep HNSW parameters at this size")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--from-json", type=Path, help="print the tables of a saved --json run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=float, default=0.95, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ready", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        setup_django()
        if args.worker == "reader":
            worker_reader(args.n, args.ready, args.stop)
            return 0
        result = worker_lancedb(args.n, args.target) if args.worker == "lancedb" else WORKERS[args.worker](args.n)
        args.worker_out.write_text(json.dumps(result))
        return 0

    from bench.load import report_write
    from bench.scale_report import machine, markdown

    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print(markdown(saved))
        return 0
    if args.sweep:
        result = {"meta": {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()},
                  "sweep": run_worker("sweep", size_of(args.sweep))}
    else:
        result = {"meta": {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}, "sizes": {}}
        lance_sizes = {size_of(s) for s in args.lancedb.split(",") if s.strip()}
        reader_sizes = {size_of(s) for s in args.readers_sizes.split(",") if s.strip()} if args.readers_sizes is not None else None
        def save():  # after every step: a 1M run is long
            if args.json:
                args.json.write_text(json.dumps(result, indent=1))

        for n in [size_of(s) for s in args.sizes.split(",") if s.strip()]:
            r = result["sizes"][str(n)] = {"build": run_worker("build", n)}
            r["serve"] = run_worker("serve", n)
            save()
            if reader_sizes is None or n in reader_sizes:
                r["readers"] = [readers(n, c) for c in (int(x) for x in args.readers.split(",") if x.strip())]
            save()
            if n in lance_sizes:
                target = min(v for s, v in r["serve"]["recall"].items())
                r["lancedb"] = run_worker("lancedb", n, "--target", f"{target:.4f}", check=False)
                save()
        result["meta"]["machine_end"] = machine()
    report_write(markdown(result), args, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
