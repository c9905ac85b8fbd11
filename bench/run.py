"""Benchmarks: query latency, indexing throughput, memory and index size, beside LanceDB.

``make bench`` (or ``python bench/run.py``) runs every scenario in its own process (so each
peak RSS is its own) and prints the tables; ``--json`` saves the raw numbers. Scenarios:

* ``flipkart``: the real catalog (1,050 products with photos) imported into ``VAR_DIR`` (default
  ``var/bench``), indexed end to end through ``search.services.products_index`` (photos decoded,
  both encoders, fusion, database, engine), then queried through ``search.selectors.product_search``.
* ``synthetic-10k`` / ``synthetic-100k``: real words recombined with random unit vectors
  (``bench/synthetic.py``), indexed straight into the embedded engine and queried through the
  storefront's retrieval and fusion (``search_rankings`` + ``rankings_blend``).
* ``*-lancedb``: the same data and the same query vectors in LanceDB (FTS + vector search per
  retriever, fused by the same ``search.hybrid.fusion.blend``): the baseline named in DESIGN.md.

Text latency includes encoding the query (every query string is new to the process: no cache);
photo latency includes decoding and encoding the photo. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("flipkart", "flipkart-lancedb", "synthetic-10k", "synthetic-10k-lancedb", "synthetic-100k", "synthetic-100k-lancedb")
TARGETS = {"text_p95_ms_100k": 25.0, "photo_p95_ms": 60.0, "index_products_per_s": 30.0}


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ["CELERY_BROKER_URL"] = ""  # indexing is timed in this process
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def dir_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


def percentiles(samples_ms: list[float]) -> dict:
    import numpy as np

    a = np.asarray(samples_ms)
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


# -- query material -------------------------------------------------------------------------------
def text_queries(n: int) -> list[str]:
    """Real shopper queries (CrowdFlower), then the same with a colour word: all distinct."""
    import csv

    from django.conf import settings

    seen: dict[str, None] = {}
    with (Path(settings.CATALOG_DIR) / "crowdflower" / "train.csv").open(newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            seen.setdefault(rec["query"].strip().lower(), None)
    base = list(seen)
    out = base + [f"{c} {q}" for c in ("black", "white", "blue", "red") for q in base]
    return out[:n]


def query_photos(n: int) -> list[bytes]:
    """Flipkart product photos as a shopper would send them: centre 85 % crop, re-encoded JPEG q80."""
    import io

    from django.conf import settings
    from PIL import Image

    folder = Path(settings.CATALOG_DIR) / "flipkart" / "images"
    out = []
    for path in sorted(folder.glob("*.jpg"))[: n]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            box = (int(w * 0.075), int(h * 0.075), int(w * 0.925), int(h * 0.925))
            buf = io.BytesIO()
            im.crop(box).save(buf, "JPEG", quality=80)
            out.append(buf.getvalue())
    return out


# -- the timed query loop ---------------------------------------------------------------------------
def time_queries(kinds: dict, run_one) -> dict:
    """``run_one(kind, item) -> (encode_ms, search_ms)``; returns kind -> percentiles of total/encode/search.

    ``cpu`` is the process CPU time per query (all threads): on a shared machine wall-clock
    times include waiting for a core, CPU time does not.
    """
    out = {}
    for kind, items in kinds.items():
        if not items:
            continue
        totals, encodes, searches, cpu = [], [], [], []
        for item in items:
            c0 = time.process_time()
            enc, search = run_one(kind, item)
            cpu.append((time.process_time() - c0) * 1000)
            totals.append(enc + search)
            encodes.append(enc)
            searches.append(search)
        out[kind] = {"total": percentiles(totals), "encode": percentiles(encodes), "search": percentiles(searches),
                     "cpu": percentiles(cpu)}
    return out


def encode_query(text: str | None, photo: bytes | None):
    """Encode like the storefront: ``(ImageFeatures | None, QueryVectors, encode_ms)``; text never cached."""
    from django.conf import settings

    from mlmodels.images import open_image
    from search.embedding import encoding

    t0 = time.perf_counter()
    feats = None
    if photo is not None:
        feats = encoding.encode_image_query(open_image(photo, max_bytes=settings.MAX_IMAGE_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS))
    vectors = encoding.query_vectors(text or None, feats)
    return feats, vectors, (time.perf_counter() - t0) * 1000


def engine_query_timer(backend):
    """``time_queries``'s ``run_one`` timing the engine's part of a query: ``search_rankings`` +
    ``rankings_blend`` on ``backend`` (encoding timed apart)."""
    from search.hybrid.pipeline import rankings_blend, search_rankings

    def run_one(kind, item):
        text, photo = item
        _, vectors, enc_ms = encode_query(text, photo)
        t0 = time.perf_counter()
        rankings_blend(search_rankings(backend=backend, text=text, vectors=vectors))
        return enc_ms, (time.perf_counter() - t0) * 1000

    return run_one


def warm_up(threads: int = 1) -> None:
    """Load the models, set the encoders' CPU threads for queries, touch every code path once (not timed).

    One thread per query is how a web worker runs (one request per process, several processes
    per machine); it also keeps torch's OpenMP threads from spinning against each other on a
    busy machine, which inflated a query's CPU time about 5x in a first run here.
    """
    import torch

    torch.set_num_threads(threads)
    photo = query_photos(1)[0]
    for i in range(3):
        encode_query(f"warm up {i}", None)
        encode_query(None, photo)


# -- scenarios: our engine -----------------------------------------------------------------------------
def scenario_flipkart(n_text: int, n_photo: int) -> dict:
    from django.conf import settings
    from django.core.management import call_command

    from search.backends import get_backend
    from search.embedding.encoders import image_encoder, text_encoder
    from search.selectors import product_search
    from search.services import products_index
    from shop.importers import read_catalog
    from shop.models import Product
    from shop.services import catalog_import

    call_command("migrate", verbosity=0)
    if Product.objects.count() < 1000:
        catalog_import(list(read_catalog("flipkart", Path(settings.CATALOG_DIR) / "flipkart")))
    ids = list(Product.objects.order_by("pk").values_list("pk", flat=True))
    with_photo = Product.objects.filter(images__isnull=False).distinct().count()
    encode_query("load the models", query_photos(1)[0])  # not timed; indexing keeps torch's default threads
    runtimes = f"text on {text_encoder().runtime}, photos on {image_encoder().runtime}"
    backend = get_backend()
    backend.reset_index()
    load_before = os.getloadavg()[0]
    started, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, len(ids), 32):  # workers.tasks.BATCH_SIZE
        products_index(product_ids=ids[i:i + 32], backend=backend, force=True)
    index_s, index_cpu_s = time.perf_counter() - started, time.process_time() - cpu0
    load_after = os.getloadavg()[0]
    warm_up()

    photos = query_photos(n_photo)
    texts = text_queries(n_text + n_photo)
    words = texts[n_text:]

    def through_selector(kind, item):
        text, photo = item
        feats, _, enc_ms = encode_query(None, photo) if photo is not None else (None, None, 0.0)
        t0 = time.perf_counter()
        product_search(text=text, image=feats)  # encodes the text itself: timed as search here
        return enc_ms, (time.perf_counter() - t0) * 1000

    engine_only = engine_query_timer(backend)

    # fresh strings for each loop so no text vector comes from the cache
    selector = time_queries({"text": [(t, None) for t in texts[:n_text]], "photo": [("", p) for p in photos],
                             "photo+text": [(w, p) for w, p in zip(words, photos, strict=False)]}, through_selector)
    texts2 = [f"{t} sale" for t in texts]
    engine = time_queries({"text": [(t, None) for t in texts2[:n_text]], "photo": [("", p) for p in photos],
                           "photo+text": [(f"{w} sale", p) for w, p in zip(words, photos, strict=False)]}, engine_only)
    live = (Path(settings.SEARCH_INDEX_DIR) / settings.SEARCH_BACKENDS["default"].get("INDEX", "products")).resolve()
    return {
        "engine": "embedded", "products": len(ids), "with_photo": with_photo,
        "index": {"seconds": index_s, "cpu_seconds": index_cpu_s, "products_per_s": len(ids) / index_s,
                  "how": f"products_index on CPU ({runtimes}), force re-embed",
                  "load_average": [load_before, load_after]},
        "latency_selector": selector, "latency": engine,
        "index_mb": dir_size_mb(live), "peak_rss_mb": peak_rss_mb(),
    }


def build_synthetic(n: int) -> dict:
    """Build (or find) the ``synthetic-<n>`` index under ``VAR_DIR``; returns its build record.

    A finished build leaves ``build.json`` (size, seed, seconds) beside it and is reused by later
    runs with the same ``n``, so the 100k index (minutes to build) is built once; delete the
    folder to time a build again. A build in progress in another process is waited for.
    """
    from django.conf import settings

    from bench.synthetic import SEED, load_vocabulary, synthetic_batches
    from search.backends.base import SearchDocument
    from search.backends.embedded import EmbeddedSearchBackend
    from search.embedding.encoding import vector_dims

    root = Path(settings.VAR_DIR) / f"synthetic-{n}"
    record_file, busy = root / "build.json", root / ".building"
    while busy.exists() and not record_file.exists():
        time.sleep(5)
    if record_file.exists():
        record = json.loads(record_file.read_text())
        if record.get("n") == n and record.get("seed") == SEED and (root / "products").exists():
            return record
    root.mkdir(parents=True, exist_ok=True)
    busy.touch()
    try:
        vocab = load_vocabulary(Path(settings.CATALOG_DIR))
        writer = EmbeddedSearchBackend({"INDEX_DIR": root, "INDEX": "products", "FIELD_BOOSTS": settings.SEARCH_FIELD_BOOSTS}, vector_dims())
        started = time.perf_counter()
        with writer.rebuild(size_hint=n) as builder:
            for b in synthetic_batches(vocab, n):
                builder.add_bulk([
                    SearchDocument(id=int(b.ids[i]), title=b.titles[i], brand=b.brands[i], category_path=b.categories[i],
                                   description=b.descriptions[i], price=float(100 + i % 5000),
                                   vectors={k: v[i] for k, v in b.vectors.items()})
                    for i in range(len(b.ids))
                ])
        seconds = time.perf_counter() - started
        record = {"n": n, "seed": SEED, "seconds": seconds, "products_per_s": n / seconds,
                  "built": datetime.now(UTC).isoformat(timespec="seconds"), "peak_rss_mb_build": peak_rss_mb()}
        record_file.write_text(json.dumps(record))
        return record
    finally:
        busy.unlink(missing_ok=True)


def scenario_synthetic(n: int, n_text: int, n_photo: int) -> dict:
    from django.conf import settings

    from search.backends.embedded import EmbeddedSearchBackend
    from search.embedding.encoding import vector_dims

    root = Path(settings.VAR_DIR) / f"synthetic-{n}"
    record = build_synthetic(n)
    build_s = record["seconds"]
    params = {"INDEX_DIR": root, "INDEX": "products", "FIELD_BOOSTS": settings.SEARCH_FIELD_BOOSTS}
    dims = vector_dims()
    t0 = time.perf_counter()
    backend = EmbeddedSearchBackend(params, dims)
    backend.count()
    open_s = time.perf_counter() - t0
    warm_up()
    photos = query_photos(n_photo)
    texts = text_queries(n_text + n_photo)

    latency = time_queries({"text": [(t, None) for t in texts[:n_text]], "photo": [("", p) for p in photos],
                            "photo+text": [(w, p) for w, p in zip(texts[n_text:], photos, strict=False)]},
                           engine_query_timer(backend))
    return {
        "engine": "embedded", "products": n,
        "index": {"seconds": build_s, "products_per_s": n / build_s, "how": "rebuild from given vectors (no encoding)",
                  "built": record["built"], "peak_rss_mb_build": record["peak_rss_mb_build"]},
        "open_s": open_s, "latency": latency, "index_mb": dir_size_mb((root / "products").resolve()), "peak_rss_mb": peak_rss_mb(),
    }


# -- scenarios: LanceDB baseline ------------------------------------------------------------------------
def scenario_lancedb(which: str, n_text: int, n_photo: int) -> dict:
    from django.conf import settings

    from bench import lance
    from search.hybrid.pipeline import rankings_blend

    if which == "flipkart":
        table_data = lance.flipkart_table()
    else:
        table_data = lance.synthetic_table(Path(settings.CATALOG_DIR), int(which))
    n = table_data.num_rows
    folder = Path(tempfile.mkdtemp(prefix="lancedb-", dir=Path(settings.VAR_DIR)))
    started = time.perf_counter()
    table = lance.build(folder, table_data)
    build_s = time.perf_counter() - started
    del table_data
    t0 = time.perf_counter()
    table = lance.open_table(folder)
    open_s = time.perf_counter() - t0
    warm_up()
    photos = query_photos(n_photo)
    texts = text_queries(n_text + n_photo)
    k = settings.SEARCH_CANDIDATES
    indexed = n > lance.EXACT_MAX

    def run_one(kind, item):
        text, photo = item
        _, vectors, enc_ms = encode_query(text, photo)
        t1 = time.perf_counter()
        rankings = {}
        if text:
            rankings["bm25"] = lance.fts(table, text, k)
            rankings["text_knn"] = lance.knn(table, "text_vector", vectors.text, k, indexed=indexed)
        if vectors.image is not None:
            rankings["image_knn"] = lance.knn(table, "image_vector", vectors.image, k, indexed=indexed)
        rankings["fused_knn"] = lance.knn(table, "fused_vector", vectors.fused, k, indexed=indexed)
        rankings_blend(rankings)
        return enc_ms, (time.perf_counter() - t1) * 1000

    latency = time_queries({"text": [(t, None) for t in texts[:n_text]], "photo": [("", p) for p in photos],
                            "photo+text": [(w, p) for w, p in zip(texts[n_text:], photos, strict=False)]}, run_one)
    return {
        "engine": "lancedb", "products": n, "index": {"seconds": build_s, "products_per_s": n / build_s, "how": lance.HOW},
        "open_s": open_s, "latency": latency, "index_mb": dir_size_mb(folder), "peak_rss_mb": peak_rss_mb(),
    }


def run_scenario(name: str, n_text: int, n_photo: int) -> dict:
    setup_django()
    if name == "flipkart":
        return scenario_flipkart(n_text, n_photo)
    if name.endswith("-lancedb"):
        base = name.removesuffix("-lancedb")
        return scenario_lancedb("flipkart" if base == "flipkart" else base.split("-")[1].replace("k", "000"), n_text, n_photo)
    return scenario_synthetic(int(name.split("-")[1].replace("k", "000")), n_text, n_photo)


# -- the parent: run each scenario in its own process, print the tables ---------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {', '.join(SCENARIOS)}")
    parser.add_argument("--text-queries", type=int, default=200)
    parser.add_argument("--photo-queries", type=int, default=100)
    parser.add_argument("--json", type=Path, help="save every number as JSON")
    parser.add_argument("--markdown", type=Path, help="save the tables as Markdown")
    parser.add_argument("--from-json", type=Path, help="print (and --markdown) the tables of a saved --json run")
    parser.add_argument("--build-only", type=int, metavar="N", help="only build the synthetic index of N products")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_only:
        setup_django()
        print(json.dumps(build_synthetic(args.build_only)))
        return 0
    if args.worker:
        result = run_scenario(args.worker, args.text_queries, args.photo_queries)
        args.worker_out.write_text(json.dumps(result))
        return 0

    from bench.report import markdown, print_report

    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print_report(saved["results"], saved["meta"], TARGETS)
        if args.markdown:
            args.markdown.write_text(markdown(saved["results"], saved["meta"], TARGETS))
        return 0
    results = {}
    for name in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; valid: {', '.join(SCENARIOS)}")
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", name, "--worker-out", out.name,
                                   "--text-queries", str(args.text_queries), "--photo-queries", str(args.photo_queries)], cwd=ROOT)
            if proc.returncode != 0:
                print(f"{name} failed with exit code {proc.returncode}", file=sys.stderr)
                continue
            results[name] = json.loads(Path(out.name).read_text())
            results[name]["wall_s"] = time.perf_counter() - started
    meta = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}
    print_report(results, meta, TARGETS)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown(results, meta, TARGETS))
    return 0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0]
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, load average {load:.1f} at the end"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
