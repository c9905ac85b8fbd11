"""Load on the real web server: concurrent shoppers searching by words and by photo.

Each server configuration is started as a real ``gunicorn`` subprocess on a free loopback port
with the production settings (``config.settings.production``: DEBUG off, a random
``SECRET_KEY``, plain HTTP since no TLS proxy sits in front), on an index of the Flipkart demo
catalog that is built once (``migrate`` + ``import_catalog flipkart``) and kept in
``var/bench/load-catalog/``. The rate-limit counters and photo tokens live in a real
``redis-server`` on a free port, as in a deployment (``CACHE_URL``); without ``redis-server``
they live in the database (``shop.state.StateCache``).

For each configuration, number of clients (threads of this process, one HTTP session each) and
kind of search, for ``--duration`` (words) or ``--photo-duration`` (photos) seconds:

* **words**: ``GET /api/search?q=...`` with the 261 CrowdFlower shopper queries, shuffled (seed 0);
* **photo**: ``POST /api/search/image`` with Flipkart product photos from ``CATALOG_DIR``;

reported: requests/s, latency p50/p95/p99, 5xx and 429 answers and failed connections counted
apart, the server's CPU seconds per request (master and workers, from ``/proc``: load distorts
it far less than wall time), and its RSS summed over the gunicorn master and workers at the end
(and the sum of the workers' peaks). The machine's load average is printed with each row.

**Rate limits**: the photo search allows one IP 10 uploads a minute (``API_THROTTLE_PHOTO_ANON``,
and 60 through ``API_THROTTLE_PHOTO_USER``, which counts anonymous clients by IP) and the text
search 120 a minute (``API_THROTTLE_SEARCH_ANON``), and every client here is 127.0.0.1, so by
default the bench raises all three to ``1000000/second`` through those settings for the server
it starts (it measures serving, not the limits; the counters are still read and written). ``--keep-rate-limits`` leaves the
production limits on: then most requests answer 429, which the table counts apart.

Configurations (``--configs``, run in the same invocation so the machine's load hits them alike):

* ``before``: as served before: the Dockerfile's former command ``gunicorn --workers 2 --timeout
  120`` (sync workers), a new database connection per request (``CONN_MAX_AGE=0``) and the photo
  rows' ``width``/``height`` empty, as every database had them (each results page then opened and
  parsed 24 photos);
* ``after``: ``gunicorn -c config/gunicorn.conf.py`` (2 sync workers, see that file) with the
  per-request fixes: connections kept (``CONN_MAX_AGE``), dimensions filled by migration ``shop/0006``;
* ``gthread``: as ``after`` with 4 threads per worker (``GUNICORN_THREADS=4``), the alternative measured.

Each configuration runs on its own copy of the catalog database.

``--profile DIR`` records the first gunicorn worker with ``py-spy record`` during each
configuration's first words phase and prints the functions holding the most samples::

    python bench/load.py                                   # 8 and 32 clients, 60 s words, 10 s photos
    python bench/load.py --clients 8 --duration 20 --photo-duration 5 --configs after
    python bench/load.py --profile var/bench/profiles --json var/bench/load.json --markdown var/bench/load.md
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG_VAR = ROOT / "var" / "bench" / "load-catalog"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NO_LIMIT = "1000000/second"
OLD_COMMAND = ["-m", "gunicorn", "config.wsgi:application", "--bind", "127.0.0.1:{port}", "--workers", "2", "--timeout", "120"]
NEW_COMMAND = ["-m", "gunicorn", "config.wsgi:application", "-c", "config/gunicorn.conf.py", "--bind", "127.0.0.1:{port}"]
#: Photo rows as every database saved them before ``ProductImage.save`` filled the dimensions.
EMPTY_DIMENSIONS = "UPDATE shop_productimage SET width = NULL, height = NULL"


@dataclass(frozen=True)
class Config:
    """A server configuration: gunicorn's arguments (``{port}`` filled in), settings, SQL run on its database copy."""

    command: list[str]
    env: dict[str, str]
    sql: str = ""
    what: str = ""


CONFIGS = {
    "before": Config(OLD_COMMAND, {"CONN_MAX_AGE": "0"}, EMPTY_DIMENSIONS,
                     "2 sync workers (the Dockerfile's former command), a DB connection per request, photo dimensions empty"),
    "after": Config(NEW_COMMAND, {}, "", "config/gunicorn.conf.py (2 sync workers), connections kept, photo dimensions stored"),
    "gthread": Config(NEW_COMMAND, {"GUNICORN_THREADS": "4"}, "", "as after, with 2 gthread workers x 4 threads (GUNICORN_THREADS=4)"),
}
START_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def catalog_dir() -> Path:
    return Path(os.environ.get("CATALOG_DIR") or ROOT.parent / "shared" / "data")


# --- the catalog, built once -------------------------------------------------------------------------------------


def build_env(var: Path) -> dict[str, str]:
    """Environment for ``manage.py`` on the bench catalog (tasks run in-process, one encoder thread)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "VAR_DIR": str(var), "PYTHONPATH": str(ROOT),
           "CATALOG_DIR": str(catalog_dir()), "CELERY_BROKER_URL": "", "PYTHONUNBUFFERED": "1"}
    env.setdefault("ENCODER_CACHE_DIR", str(ROOT / "var" / "models"))
    for name in ("DATABASE_URL", "MEDIA_ROOT", "SEARCH_INDEX_DIR", "ELASTICSEARCH_URL", "CACHE_URL", "REDIS_URL"):
        env.pop(name, None)
    return env


def ensure_catalog(var: Path) -> dict:
    """The Flipkart demo catalog, imported and indexed into ``var`` (done once; ``ready.json`` marks it)."""
    marker = var / "ready.json"
    if marker.exists():
        # Migrations run on the kept catalog too (data migrations included), so it follows the code.
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=build_env(var), check=True)
        return json.loads(marker.read_text())
    if var.exists():
        shutil.rmtree(var)  # a build that did not finish
    var.mkdir(parents=True)
    env = build_env(var)
    started = time.perf_counter()
    print(f"Building the bench catalog in {var} (once): migrate, import_catalog flipkart", flush=True)
    with (var / "build.log").open("w") as log:
        for command in (["manage.py", "migrate", "--noinput"], ["manage.py", "import_catalog", "flipkart", "--verbosity", "0"]):
            subprocess.run([sys.executable, *command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    info = {"catalog": "flipkart", "built_s": round(time.perf_counter() - started, 1), "built_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    marker.write_text(json.dumps(info))
    return info


# --- query mix ------------------------------------------------------------------------------------------------------


def text_queries() -> list[str]:
    """The distinct CrowdFlower shopper queries, shuffled (seed 0)."""
    with (catalog_dir() / "crowdflower" / "train.csv").open(newline="", encoding="utf-8") as fh:
        queries = sorted({row["query"].strip() for row in csv.DictReader(fh) if row["query"].strip()})
    random.Random(0).shuffle(queries)
    return queries


def photos(limit: int = 64) -> list[tuple[str, bytes]]:
    """``limit`` Flipkart product photos (name, bytes), a seeded sample."""
    files = sorted((catalog_dir() / "flipkart" / "images").glob("*.jp*g"))
    return [(p.name, p.read_bytes()) for p in random.Random(0).sample(files, min(limit, len(files)))]


# --- the server -----------------------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


def vm_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    url: str
    log: Path

    def pids(self) -> list[int]:
        return [self.process.pid, *children(self.process.pid)]

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def cpu_s(self) -> float:
        return sum(cpu_s(p) for p in self.pids())

    def rss_mb(self) -> float:
        return sum(vm_kib(p, "VmRSS") for p in self.pids()) / 1024

    def workers_peak_mb(self) -> float:
        return sum(vm_kib(p, "VmHWM") for p in self.workers()) / 1024

    def stop(self) -> None:
        stop(self.process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def server_env(var: Path, *, state_url: str | None, keep_limits: bool) -> dict[str, str]:
    """``config.settings.production`` on loopback over plain HTTP, on the bench catalog."""
    from django.core.management.utils import get_random_secret_key

    env = {**build_env(var), "DJANGO_SETTINGS_MODULE": "config.settings.production",
           "SECRET_KEY": get_random_secret_key() + get_random_secret_key(), "ALLOWED_HOSTS": "127.0.0.1,localhost",
           "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "INFO"}
    if state_url:
        env["CACHE_URL"] = state_url
    if not keep_limits:
        # Anonymous photo searches count against both photo limits (per IP): the anonymous one and
        # the per-user one, which keys anonymous clients by IP too.
        for name in ("API_THROTTLE_SEARCH_ANON", "API_THROTTLE_PHOTO_ANON", "API_THROTTLE_PHOTO_USER"):
            env[name] = NO_LIMIT
    return env


def start_server(name: str, env: dict[str, str], work: Path, var: Path) -> Server:
    """Start configuration ``name`` on its own copy of the catalog database; wait until every
    worker has finished its warm start."""
    config = CONFIGS[name]
    db = work / f"{name}.sqlite3"
    shutil.copy(var / "db.sqlite3", db)
    if config.sql:
        with sqlite3.connect(db) as con:
            con.execute(config.sql)
    env = {**env, **config.env, "DATABASE_URL": f"sqlite:///{db}"}
    port = free_port()
    command = [sys.executable, *(a.format(port=port) for a in config.command)]
    log = work / f"server-{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn ({name}) exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            workers = server.workers()
            if workers and log.read_text(errors="replace").count("Warm start: ready") >= len(workers):
                return server
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn ({name}) workers not ready after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    except BaseException:
        server.stop()
        raise


def start_redis(work: Path) -> tuple[subprocess.Popen | None, str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        return None, None
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work), "--save", "",
                                "--appendonly", "no", "--logfile", str(work / "redis.log")], start_new_session=True)
    time.sleep(0.5)
    return process, f"redis://127.0.0.1:{port}/0"


# --- clients --------------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    config: str
    kind: str
    clients: int
    duration_s: float
    requests: int = 0
    ok: int = 0
    status_5xx: int = 0
    status_429: int = 0
    other_4xx: int = 0
    failed: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    server_cpu_ms_per_request: float = 0.0
    server_rss_mb: float = 0.0
    workers_peak_rss_mb: float = 0.0
    load_average: float = 0.0
    statuses: dict = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_phase(server: Server, kind: str, clients: int, duration_s: float, queries: list[str],
              images: list[tuple[str, bytes]]) -> Phase:
    """``clients`` threads sending ``kind`` searches back to back for ``duration_s`` seconds."""
    import requests

    counter = itertools.count()
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client() -> None:
        session = requests.Session()
        mine: list[tuple[float, int]] = []
        start_gate.wait()
        while time.perf_counter() < deadline[0]:
            i = next(counter)
            started = time.perf_counter()
            try:
                if kind == "words":
                    response = session.get(f"{server.url}/api/search", params={"q": queries[i % len(queries)]}, timeout=120)
                else:
                    name, data = images[i % len(images)]
                    response = session.post(f"{server.url}/api/search/image", files={"image": (name, data, "image/jpeg")}, timeout=120)
                status = response.status_code
            except requests.RequestException:
                status = 0
            mine.append(((time.perf_counter() - started) * 1000, status))
        with lock:
            for ms, status in mine:
                statuses[status] += 1
                if status == 200:
                    latencies.append(ms)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for pid in server.workers():
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS back to the current RSS
        except OSError:
            pass
    cpu_before = server.cpu_s()
    started = time.perf_counter()
    deadline[0] = started + duration_s
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = server.cpu_s() - cpu_before
    total = sum(statuses.values())
    return Phase(
        config=server.name, kind=kind, clients=clients, duration_s=round(elapsed, 1), requests=total, ok=statuses[200],
        status_5xx=sum(n for s, n in statuses.items() if s >= 500), status_429=statuses[429],
        other_4xx=sum(n for s, n in statuses.items() if 400 <= s < 500 and s != 429), failed=statuses[0],
        rps=statuses[200] / elapsed, p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99), server_cpu_ms_per_request=cpu * 1000 / max(total, 1),
        server_rss_mb=server.rss_mb(), workers_peak_rss_mb=server.workers_peak_mb(), load_average=os.getloadavg()[0],
        statuses={str(k): v for k, v in sorted(statuses.items())},
    )


# --- profile ---------------------------------------------------------------------------------------------------------


def start_profile(server: Server, out: Path, duration_s: float) -> subprocess.Popen | None:
    """``py-spy record`` (raw collapsed stacks) on the first worker, or ``None`` without py-spy."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed (pip install -e '.[bench]'); no profile", file=sys.stderr)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([py_spy, "record", "--pid", str(server.workers()[0]), "--duration", str(max(1, int(duration_s))),
                             "--rate", "50", "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


#: Where a request's time goes: a label, and the frame (function name, space, file) whose samples it counts.
PROFILE_PARTS = (
    ("whole request (Django)", "WSGIHandler.__call__ (django/core/handlers/wsgi.py"),
    ("rate limit check (Redis round trips)", "APIView.check_throttles ("),
    ("photo decoding", "decode_query_photo ("),
    ("text encoding (MiniLM, ONNX Runtime)", "encode_text_query ("),
    ("image encoding (EfficientNet, ONNX Runtime)", "encode_image_query ("),
    ("retrieval (BM25 + kNN)", "retrieve (search/hybrid/retrieve.py"),
    ("fusion", "rankings_fuse ("),
    ("click prior (database)", "click_prior_apply ("),
    ("facets (database)", "_facets ("),
    ("loading the page's products (database)", "QuerySet.in_bulk ("),
    ("photo dimensions read from the files", "ImageField.update_dimension_fields ("),
    ("new database connection", "BaseDatabaseWrapper.connect ("),
    ("JSON page (serializers)", "page_response ("),
    ("gunicorn: closing the client socket", "close_graceful ("),
)


def _stacks(raw: Path):
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield [f.replace(str(ROOT) + "/", "").split("site-packages/")[-1] for f in stack.split(";")], int(count)


def profile_breakdown(raw: Path) -> list[tuple[str, float]]:
    """(part, % of the worker's samples) for each of :data:`PROFILE_PARTS` found in a py-spy raw file."""
    total, hits = 0, Counter()
    for frames, n in _stacks(raw):
        total += n
        for label, marker in PROFILE_PARTS:
            if any(marker in f for f in frames):
                hits[label] += n
    return [(label, 100 * hits[label] / max(total, 1)) for label, _ in PROFILE_PARTS if hits[label]]


def profile_summary(raw: Path, top: int = 12) -> list[tuple[str, float, float]]:
    """(function, inclusive %, self %) of the functions with the most samples of their own in a py-spy raw file."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for frames, n in _stacks(raw):
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    total = max(total, 1)
    return [(frame, 100 * inclusive[frame] / total, 100 * n / total) for frame, n in own.most_common(top)]


# --- report ----------------------------------------------------------------------------------------------------------

HEADER = ("| server | search | clients | s | requests | req/s | p50 ms | p95 ms | p99 ms | 5xx | 429 | other errors "
          "| server CPU ms/request | server RSS MB (workers' peak) | load avg |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def row(p: Phase) -> str:
    return (f"| {p.config} | {p.kind} | {p.clients} | {p.duration_s:.0f} | {p.requests} | {p.rps:.1f} | {p.p50_ms:.0f} | "
            f"{p.p95_ms:.0f} | {p.p99_ms:.0f} | {p.status_5xx} | {p.status_429} | {p.other_4xx + p.failed} | "
            f"{p.server_cpu_ms_per_request:.0f} | {p.server_rss_mb:,.0f} ({p.workers_peak_rss_mb:,.0f}) | {p.load_average:.1f} |")


def ratios(phases: list[Phase], baseline: str) -> list[str]:
    lines = []
    base = {(p.kind, p.clients): p for p in phases if p.config == baseline}
    for p in phases:
        b = base.get((p.kind, p.clients))
        if p.config == baseline or b is None or not b.rps or not p.p95_ms:
            continue
        lines.append(f"- {p.config} vs {baseline}, {p.kind}, {p.clients} clients: req/s x{p.rps / b.rps:.2f}, "
                     f"p95 x{p.p95_ms / b.p95_ms:.2f}, server CPU per request x{p.server_cpu_ms_per_request / max(b.server_cpu_ms_per_request, 1e-9):.2f}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="8,32", help="concurrent clients, comma-separated (default 8,32)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of word searches per row (default 60)")
    parser.add_argument("--photo-duration", type=float, default=10.0, help="seconds of photo searches per row (default 10; 0 skips)")
    parser.add_argument("--configs", default="before,after,gthread", help=f"server configurations in order, from {', '.join(CONFIGS)}")
    parser.add_argument("--var", type=Path, default=DEFAULT_CATALOG_VAR, help="the catalog's VAR_DIR (built there once)")
    parser.add_argument("--keep-rate-limits", action="store_true", help="leave the production rate limits on (429s expected)")
    parser.add_argument("--no-redis", action="store_true", help="rate-limit counters and photo tokens in the database, not Redis")
    parser.add_argument("--profile", type=Path, help="py-spy record each configuration's first words phase into this folder")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown or not args.configs:
        parser.error(f"unknown configuration(s) {unknown}; choose from {', '.join(CONFIGS)}")
    if not args.clients or min(args.clients) < 1 or args.duration <= 0 or args.photo_duration < 0:
        parser.error("--clients must be positive integers, --duration > 0 and --photo-duration >= 0")
    return args



def report_write(text: str, args: argparse.Namespace, payload: dict) -> None:
    """Print the tables, and write them to ``args.markdown`` and ``payload`` to ``args.json`` when asked."""
    print("\n" + text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    info = ensure_catalog(args.var.resolve())
    queries, images = text_queries(), photos()
    work = Path(tempfile.mkdtemp(prefix="load-"))
    redis_process, state_url = (None, None) if args.no_redis else start_redis(work)
    env = server_env(args.var.resolve(), state_url=state_url, keep_limits=args.keep_rate_limits)
    phases: list[Phase] = []
    profiles: dict[str, list] = {}
    load_start = os.getloadavg()
    try:
        for config in args.configs:
            server = start_server(config, env, work, args.var.resolve())
            try:
                run_phase(server, "words", 2, 3, queries, images)  # warm-up (not reported)
                for clients in args.clients:
                    spy = None
                    if args.profile and clients == args.clients[0]:
                        spy = start_profile(server, args.profile / f"{config}-words-{clients}.txt", args.duration)
                    phases.append(run_phase(server, "words", clients, args.duration, queries, images))
                    print(row(phases[-1]), flush=True)
                    if spy is not None:
                        spy.wait(60)
                        raw = args.profile / f"{config}-words-{clients}.txt"
                        if raw.exists():
                            profiles[config] = {"parts": profile_breakdown(raw), "own": profile_summary(raw)}
                    if args.photo_duration:
                        phases.append(run_phase(server, "photo", clients, args.photo_duration, queries, images))
                        print(row(phases[-1]), flush=True)
            finally:
                server.stop()
    finally:
        if redis_process is not None:
            stop(redis_process)

    state = "Redis" if state_url else "the database"
    limits = "production rate limits" if args.keep_rate_limits else f"rate limits raised to {NO_LIMIT} (API_THROTTLE_*_ANON)"
    lines = [
        f"Load on gunicorn, config.settings.production, catalog {info['catalog']} ({args.var}); rate-limit counters and photo "
        f"tokens in {state}; {limits}; {len(queries)} CrowdFlower queries, {len(images)} Flipkart photos; "
        f"load average at start {load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs.",
        "",
        *(f"- {name}: {CONFIGS[name].what}" for name in args.configs),
        "",
        HEADER,
        *(row(p) for p in phases),
        "",
        *ratios(phases, args.configs[0]),
    ]
    if profiles:
        names = list(profiles)
        parts = [label for label, _ in PROFILE_PARTS if any(label in dict(p["parts"]) for p in profiles.values())]
        lines += ["", f"Where a worker's time goes (py-spy record, 50 Hz, first worker, words with {args.clients[0]} clients; "
                  "% of its samples, parts overlap: facets and products are inside the search):", "",
                  "| part | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names),
                  *("| " + label + " | " + " | ".join(f"{dict(profiles[n]['parts']).get(label, 0.0):.1f}" for n in names) + " |"
                    for label in parts)]
        for config, profile in profiles.items():
            lines += ["", f"py-spy, {config}: functions with the most samples of their own", "",
                      "| function | inclusive % | self % |", "|---|---:|---:|",
                      *(f"| `{frame[:120]}` | {inc:.1f} | {own:.1f} |" for frame, inc, own in profile["own"])]
    report_write("\n".join(lines), args, {"load_average_start": load_start, "catalog": info, "state_store": state,
                                           "rate_limits": limits, "phases": [asdict(p) for p in phases], "profiles": profiles})
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(p.status_5xx == 0 for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
