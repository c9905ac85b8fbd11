"""The periodic click-aggregates refresh, run by a real Celery beat + worker on a real Redis broker.

Self-contained: the worker gets its own SQLite file and VAR_DIR (migrated and seeded through
``manage.py`` with the real services), so it needs nothing from pytest-django's database.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.celery

REPO_ROOT = Path(__file__).resolve().parents[1]

SEED = """
from django.utils import timezone
from search.clicks import services
from shop.models import Product
from shop.signals import indexing_deferred
ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
with indexing_deferred():
    products = [Product.objects.create(title=f"Cotton towel {i}") for i in range(3)]
for s in range(6):
    rec = services.impression_record(query="towel", product_ids=[p.pk for p in products], session_key=f"s{s}", user_agent=ua)
    out = services.click_record(token=rec.token, product_id=products[2].pk, position=3, session_key=f"s{s}", user_agent=ua, ip=f"192.0.{10 + s}.2")
    assert out.counted, out
print("IDS", *[p.pk for p in products])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _priors(db: Path) -> dict[tuple[str, int], float]:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return {(q, pid): prior for q, pid, prior in conn.execute("SELECT query, product_id, prior FROM search_clickstat")}
    except sqlite3.OperationalError:
        return {}


def test_celery_beat_refreshes_the_click_priors(tmp_path):
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.skip("redis-server is not installed; `make redis-server` installs it (Debian package)")
    port = _free_port()
    db = tmp_path / "db.sqlite3"
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{db}",
        "SEARCH_INDEX_DIR": str(tmp_path / "index"), "ELASTICSEARCH_URL": "", "CELERY_BROKER_URL": "", "PYTHONPATH": str(REPO_ROOT),
        "CLICK_REFRESH_INTERVAL_S": "1", "CLICK_QUERY_MIN_SESSIONS": "3",
    }
    manage = [sys.executable, str(REPO_ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=REPO_ROOT, check=True, timeout=300)
    seeded = subprocess.run([*manage, "shell", "-c", SEED], env=env, cwd=REPO_ROOT, check=True, timeout=300, capture_output=True, text=True)
    ids = [int(x) for x in seeded.stdout.split("IDS", 1)[1].split()]
    assert _priors(db) == {}  # nothing aggregated before the worker runs

    redis = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "worker.log"
    worker = None
    try:
        env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{port}/0"
        with log.open("w") as fh:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers", "worker", "-B", "--pool=solo", "-l", "info",
                 "-s", str(tmp_path / "beat-schedule"), "-n", "clicks-test@%h", "--without-mingle", "--without-gossip"],
                env=env, cwd=REPO_ROOT, stdout=fh, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 180
        while not _priors(db) and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.5)
        priors = _priors(db)
        assert priors, f"no refresh happened; worker log:\n{log.read_text()[-3000:]}"
        assert priors[("towel", ids[2])] > 0.5  # clicked by six shoppers at position 3
        assert priors[("towel", ids[0])] < 0.5  # shown first six times, never clicked
        assert priors[("", ids[2])] > 0.5
        assert "workers.tasks.refresh_click_aggregates" in log.read_text()
    finally:
        if worker is not None:
            _stop(worker)
        _stop(redis)
