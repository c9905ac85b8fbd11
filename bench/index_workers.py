"""Indexing throughput with photos through real Celery workers: 1 and 2 worker processes.

For each number of workers (``--workers``, default ``1,2``), in a fresh data folder (a copy of
a database migrated once, a new embedded index, a real ``redis-server`` as the broker):

1. start that many ``celery -A workers worker --pool=solo`` processes (concurrency 1 each, one
   encoder thread each: ``ENCODER_CPU_THREADS=1``) and wait until each has loaded its encoders
   (warm start), so model loading is not counted;
2. save ``--products`` Flipkart products with their photos (``shop.services.catalog_import``,
   photos copied into the media folder), then enqueue them all (``workers.tasks.enqueue_index``:
   tasks of 32 products) — in a separate process, as a web server or import would;
3. poll the database until every product is indexed (or failed) and stop the clock.

Reported: the save time, the time from enqueue to all indexed, products/s over that time, the
workers' CPU seconds (from ``/proc``) per product, and their peak RSS. On the CPU unless
``--device cuda`` (``ENCODER_DEVICE``); see docs/scaling.md "GPU batch path" for the design on a GPU.

    python bench/index_workers.py                         # 300 products, 1 then 2 workers
    python bench/index_workers.py --products 64 --workers 1 --json var/bench/index_workers.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import build_env, catalog_dir, cpu_s, free_port, report_write, stop, vm_kib  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_VAR = ROOT / "var" / "bench" / "index-workers-template"
START_TIMEOUT_S = 300
TARGET_PRODUCTS_PER_S = 60


@dataclass
class Scenario:
    workers: int
    products: int
    indexed: int
    failed: int
    save_s: float
    index_s: float
    products_per_s: float
    worker_cpu_s: float
    cpu_s_per_product: float
    workers_peak_rss_mb: float
    load_average: float


def migrated_template() -> Path:
    """A database migrated once (``var/bench/index-workers-template/db.sqlite3``), copied for each scenario."""
    db = TEMPLATE_VAR / "db.sqlite3"
    if not (TEMPLATE_VAR / "ready").exists():
        shutil.rmtree(TEMPLATE_VAR, ignore_errors=True)
        TEMPLATE_VAR.mkdir(parents=True)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=build_env(TEMPLATE_VAR), check=True)
        (TEMPLATE_VAR / "ready").touch()
    return db


def scenario_env(var: Path, broker: str, device: str = "cpu") -> dict[str, str]:
    env = build_env(var)
    env.update({"CELERY_BROKER_URL": broker, "ENCODER_DEVICE": device, "ENCODER_CPU_THREADS": "1"})
    return env


def start_workers(n: int, env: dict[str, str], var: Path) -> list[subprocess.Popen]:
    """``n`` Celery workers (pool solo), each past its warm start."""
    processes, logs = [], []
    for i in range(n):
        log = var / f"worker-{i}.log"
        logs.append(log)
        with log.open("w") as out:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=solo", "-l", "info", "-n", f"bench{i}@%h",
                 "--without-mingle", "--without-gossip", "--without-heartbeat"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + START_TIMEOUT_S
    while not all("Warm start: ready" in log.read_text(errors="replace") for log in logs):
        dead = [p for p in processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            for p in processes:
                stop(p)
            raise RuntimeError("a Celery worker exited or did not warm up:\n" + "\n".join(log.read_text()[-2000:] for log in logs))
        time.sleep(0.5)
    return processes


def counts(db: Path) -> tuple[int, int]:
    """(indexed, failed) products in the scenario's database."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        rows = dict(con.execute("SELECT index_state, count(*) FROM shop_product GROUP BY index_state").fetchall())
    return rows.get("indexed", 0), rows.get("failed", 0)


def produce(n: int) -> None:
    """Child process (``--produce``): save ``n`` Flipkart products with photos, enqueue them; print JSON timings."""
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from shop.importers import read_catalog
    from shop.services import catalog_import
    from workers.tasks import enqueue_index

    rows = [r for r in read_catalog("flipkart", catalog_dir() / "flipkart") if not r.skip_reason and r.image_path and r.image_path.exists()][:n]
    started = time.time()
    summary = catalog_import(rows)
    saved = time.time()
    sent = enqueue_index(summary.product_ids)
    print(json.dumps({"saved": len(summary.product_ids), "sent": len(sent), "save_s": saved - started, "enqueued_at": time.time()}))


def run_scenario(workers: int, products: int, broker: str, redis_cli: list[str], work: Path, limit_s: float,
                 device: str = "cpu") -> Scenario:
    var = work / f"workers-{workers}"
    var.mkdir()
    shutil.copy(migrated_template(), var / "db.sqlite3")
    subprocess.run([*redis_cli, "FLUSHALL"], check=True, stdout=subprocess.DEVNULL)
    env = scenario_env(var, broker, device)
    processes = start_workers(workers, env, var)
    try:
        cpu_before = sum(cpu_s(p.pid) for p in processes)
        for p in processes:
            try:
                Path(f"/proc/{p.pid}/clear_refs").write_text("5")
            except OSError:
                pass
        out = subprocess.run([sys.executable, __file__, "--produce", str(products)], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
        produced = json.loads(out.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + limit_s
        while True:
            indexed, failed = counts(var / "db.sqlite3")
            if indexed + failed >= produced["saved"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        index_s = time.time() - produced["enqueued_at"]
        cpu = sum(cpu_s(p.pid) for p in processes) - cpu_before
        peak = sum(vm_kib(p.pid, "VmHWM") for p in processes) / 1024
    finally:
        for p in processes:
            stop(p)
    return Scenario(workers=workers, products=produced["saved"], indexed=indexed, failed=failed, save_s=produced["save_s"],
                    index_s=index_s, products_per_s=indexed / index_s, worker_cpu_s=cpu,
                    cpu_s_per_product=cpu / max(indexed, 1), workers_peak_rss_mb=peak, load_average=os.getloadavg()[0])


HEADER = ("| Celery workers (concurrency 1 each) | products | indexed | failed | save s | enqueue to all indexed s | products/s "
          "| workers' CPU s | CPU s per product | workers' peak RSS MB | load avg |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def row(s: Scenario) -> str:
    return (f"| {s.workers} | {s.products} | {s.indexed} | {s.failed} | {s.save_s:.1f} | {s.index_s:.1f} | {s.products_per_s:.1f} | "
            f"{s.worker_cpu_s:.1f} | {s.cpu_s_per_product:.3f} | {s.workers_peak_rss_mb:,.0f} | {s.load_average:.1f} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=300, help="Flipkart products with photos per scenario (default 300)")
    parser.add_argument("--workers", default="1,2", help="Celery worker processes per scenario, comma-separated (default 1,2)")
    parser.add_argument("--limit", type=float, default=1800.0, help="longest wait for the indexing of one scenario (s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="ENCODER_DEVICE of the workers (default cpu)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument("--produce", type=int, help=argparse.SUPPRESS)  # internal: the saving process
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if not args.workers or min(args.workers) < 1 or args.products < 1:
        parser.error("--workers must be positive integers and --products >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.produce:
        produce(args.produce)
        return 0
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed (`make redis-server`): the workers need a broker", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="index-workers-"))
    port = free_port()
    redis = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work), "--save", "",
                              "--appendonly", "no", "--logfile", str(work / "redis.log")], start_new_session=True)
    time.sleep(0.5)
    redis_cli = [shutil.which("redis-cli") or "redis-cli", "-p", str(port)]
    load_start = os.getloadavg()
    scenarios = []
    try:
        for n in args.workers:
            scenarios.append(run_scenario(n, args.products, f"redis://127.0.0.1:{port}/0", redis_cli, work, args.limit,
                                          args.device))
            print(row(scenarios[-1]), flush=True)
    finally:
        stop(redis)
    base = scenarios[0]
    lines = [
        f"Indexing with photos through Celery (pool solo, ENCODER_CPU_THREADS=1, ENCODER_DEVICE={args.device}), embedded index, "
        f"SQLite, Redis broker; {args.products} Flipkart products; {os.cpu_count()} CPUs; load average at start "
        f"{load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f}; target {TARGET_PRODUCTS_PER_S} products/s.",
        "", HEADER, *(row(s) for s in scenarios), "",
        *(f"- {s.workers} workers vs {base.workers}: products/s x{s.products_per_s / base.products_per_s:.2f}, "
          f"CPU s per product x{s.cpu_s_per_product / base.cpu_s_per_product:.2f}" for s in scenarios[1:] if base.products_per_s),
    ]
    report_write("\n".join(lines), args, {"load_average_start": load_start, "scenarios": [asdict(s) for s in scenarios]})
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(s.indexed == s.products for s in scenarios) else 1


if __name__ == "__main__":
    sys.exit(main())
