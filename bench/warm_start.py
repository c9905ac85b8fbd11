"""Warm start, measured: how soon a freshly started web server serves, is ready, and answers its first search.

Each scenario starts ``manage.py runserver --noreload`` from a checkout on one prepared data
folder (``VAR_DIR`` holding a database and index, e.g. what ``make demo`` leaves in ``var/``),
then measures from process start:

* **serving**: the first 200 from ``/admin/login/`` (no model involved; every checkout has it);
* **ready**: the first 200 from ``/readyz`` (only where the checkout has one; warm start on);
* **first search**: one ``/api/search?q=...`` sent right after (ready, or serving where there
  is no ``/readyz``): its wall time, what a shopper waits; then a **second search** with other words;
* the server's peak RSS (``VmHWM``) at the end.

Scenarios, all in the same run so the busy machine's load hits them alike: this checkout with
``SEARCH_WARM_START`` on and off (everything loads on the first search), and optionally another
checkout as the baseline (``--baseline /work/main``: before warm start existed)::

    python bench/warm_start.py --var /path/to/demo/var --baseline ../main --runs 2 --json var/bench/warm_start.json

``--fresh-clone`` instead times ``make demo`` on a fresh ``git clone`` of this checkout (the
virtual environment is linked, not installed: pip is not part of the time): from ``make demo``
to the first storefront page, to ``/readyz`` and to the first search.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ("cotton bath towel", "analog wrist watch for men")
POLL_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 120.0) -> int:
    """HTTP status of a GET (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0


def wait_for(url: str, want: set[int], started: float, limit_s: float, process: subprocess.Popen) -> float | None:
    """Seconds from ``started`` until ``url`` answers one of ``want``; ``None`` on a 404 (no such page)."""
    while True:
        status = get(url, timeout=5)
        if status in want:
            return time.perf_counter() - started
        if status == 404:
            return None
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before {url} answered")
        if time.perf_counter() - started > limit_s:
            raise RuntimeError(f"{url} did not answer {want} within {limit_s:.0f} s (last: {status})")
        time.sleep(POLL_S)


def timed_search(base: str, words: str) -> tuple[float, int]:
    """(milliseconds, status) of one API search."""
    started = time.perf_counter()
    status = get(f"{base}/api/search?q={urllib.parse.quote(words)}")
    return (time.perf_counter() - started) * 1000, status


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def run_server(checkout: Path, var: Path, *, warm: bool, limit_s: float, log: Path) -> dict:
    """Start one server, measure it (see the module docstring), stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VAR_DIR": str(var), "PYTHONPATH": str(checkout), "SEARCH_WARM_START": "true" if warm else "false",
           "DJANGO_SETTINGS_MODULE": "config.settings.base", "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                                   cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        serving = wait_for(f"{base}/admin/login/", {200}, started, limit_s, process)
        ready = wait_for(f"{base}/readyz", {200}, started, limit_s, process) if warm else None
        first_ms, first_status = timed_search(base, QUERIES[0])
        second_ms, second_status = timed_search(base, QUERIES[1])
        steps = {}
        if ready is not None:
            with urllib.request.urlopen(f"{base}/readyz", timeout=30) as response:
                steps = json.loads(response.read()).get("steps_s", {})
        return {"serving_s": serving, "ready_s": ready, "first_search_ms": first_ms, "second_search_ms": second_ms,
                "statuses": [first_status, second_status], "peak_rss_mb": peak_rss_mb(process.pid), "warm_up_steps_s": steps}
    finally:
        stop(process)


def fresh_clone_demo(limit_s: float, work: Path) -> dict:
    """``make demo`` on a fresh clone: seconds to the first storefront page, to ``/readyz``, and the first search."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to((ROOT / ".venv").resolve())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(clone), "PYTHONUNBUFFERED": "1"}
    for name in ("VAR_DIR", "DATABASE_URL", "ENCODER_CACHE_DIR", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    catalog = os.environ.get("CATALOG_DIR") or str(ROOT.parent / "shared" / "data")
    log = work / "make-demo.log"
    with log.open("w") as out:
        started = time.perf_counter()
        # -o: the linked environment counts as installed (make would otherwise reinstall it from the clone).
        process = subprocess.Popen(["make", "-o", ".venv/.installed", "demo", f"PORT={port}", f"CATALOG_DIR={catalog}"],
                                   cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first_page = wait_for(f"{base}/", {200}, started, limit_s, process)
        ready = wait_for(f"{base}/readyz", {200}, started, limit_s, process)
        first_ms, status = timed_search(base, QUERIES[0])
        return {"first_page_s": first_page, "ready_s": ready, "first_search_ms": first_ms, "status": status, "log": str(log)}
    finally:
        stop(process)


def summary(runs: list[dict]) -> dict:
    keys = ("serving_s", "ready_s", "first_search_ms", "second_search_ms", "peak_rss_mb")
    return {k: (statistics.median(v) if (v := [r[k] for r in runs if r[k] is not None]) else None) for k in keys}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} {unit}" if unit == "s" else f"{value:,.0f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--var", type=Path, help="VAR_DIR with a migrated database and a built index (e.g. make demo's var/)")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure the same way (e.g. ../main, before warm start)")
    parser.add_argument("--runs", type=int, default=2, help="servers started per scenario (median reported)")
    parser.add_argument("--limit", type=float, default=600.0, help="longest wait for a server (s)")
    parser.add_argument("--fresh-clone", action="store_true", help="time `make demo` on a fresh clone instead")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="warm-start-"))
    results: dict = {"load_average": os.getloadavg(), "queries": QUERIES}
    try:
        if args.fresh_clone:
            results["fresh_clone"] = demo = fresh_clone_demo(args.limit, work)
            print(f"make demo on a fresh clone: first page {demo['first_page_s']:.1f} s, /readyz {demo['ready_s']:.1f} s, "
                  f"first search {demo['first_search_ms']:,.0f} ms (HTTP {demo['status']})")
        else:
            if args.var is None:
                parser.error("--var is required (or --fresh-clone)")
            scenarios = [("this checkout, warm start on", ROOT, True), ("this checkout, warm start off", ROOT, False)]
            if args.baseline:
                scenarios.append((f"baseline {args.baseline}", args.baseline.resolve(), False))
            runs: dict[str, list[dict]] = {label: [] for label, _, _ in scenarios}
            for i in range(args.runs):  # interleaved, so a load change hits every scenario
                for n, (label, checkout, warm) in enumerate(scenarios):
                    runs[label].append(run_server(checkout, args.var.resolve(), warm=warm, limit_s=args.limit,
                                                  log=work / f"server-{n}-{i}.log"))
            results["scenarios"] = {label: {"runs": r, "median": summary(r)} for label, r in runs.items()}
            print(f"load average at start {results['load_average'][0]:.1f}; {args.runs} server start(s) per scenario, median")
            print("| scenario | serving | /readyz 200 | first search | second search | peak RSS |\n|---|---:|---:|---:|---:|---:|")
            for label, data in results["scenarios"].items():
                m = data["median"]
                print(f"| {label} | {fmt(m['serving_s'], 's')} | {fmt(m['ready_s'], 's')} | {fmt(m['first_search_ms'], 'ms')} | "
                      f"{fmt(m['second_search_ms'], 'ms')} | {fmt(m['peak_rss_mb'], 'MB')} |")
            for r in runs[scenarios[0][0]]:
                print("warm-up steps (s): " + ", ".join(f"{name} {sec:.1f}" for name, sec in r["warm_up_steps_s"].items()))
    finally:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))
        shutil.rmtree(work / "clone", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
