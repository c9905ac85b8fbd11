"""Real server processes for the attack tests: gunicorn or runserver on a free loopback port.

Every attack in ``tests/attacks/`` is sent over HTTP to a real server process (never Django's
test client), started with production-like settings on 127.0.0.1: DEBUG off, a random
``SECRET_KEY``, ``ALLOWED_HOSTS`` for the loopback names, and plain HTTP (``SECURE_SSL_REDIRECT``
off, since no TLS proxy sits in front). The server uses the test database file, so rows a
``transactional_db`` test commits are what the server reads, and the test run's encoder cache,
so no test exports the encoders to ONNX twice.

Fixtures (``tests/attacks/conftest.py`` makes them available):

- ``server_factory``: ``start(kind="gunicorn" | "runserver", settings=..., env=..., args=...)``
  returns a :class:`Server` (``command="..."`` runs a given command line instead, e.g. the one
  ``make -n serve`` prints); every server a module started is stopped at its end.
- ``redis_url``: a real ``redis-server`` on a free port (skipped with a reason if not installed).

:func:`start_celery_worker` starts a real worker (with Celery beat inside if asked); :func:`celery_send_to` makes this process's
tasks go to a broker instead of running in-process (the test settings' default).

Memory is read from ``/proc/<pid>/status``: :func:`peak_reset` sets a process's high-water mark
(``VmHWM``) back to its current RSS, so ``vm_kib(pid, "VmHWM")`` after an attack minus
``vm_kib(pid, "VmRSS")`` before it is the most the attack made the process grow.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from django.core.management.utils import get_random_secret_key

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Longest wait for a server to answer its first request (Django set-up on a busy 2-core machine).
START_TIMEOUT_S = 90


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition`` until it returns something true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; to the process group a server was started in
    (``start_new_session``), so runserver's autoreloader child goes with it."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
        process.wait(5)


def vm_kib(pid: int, key: str = "VmRSS") -> int:
    """``VmRSS``, ``VmHWM`` (peak RSS) or another ``Vm*`` line of ``/proc/<pid>/status``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def peak_reset(pid: int) -> None:
    """Set the process's ``VmHWM`` back to its current RSS (``clear_refs`` 5, Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (gunicorn's workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@dataclass
class Server:
    """A running server. ``url`` has no trailing slash; ``log`` holds its stdout and stderr."""

    url: str
    process: subprocess.Popen
    log: Path
    kind: str
    env: dict = field(repr=False, default_factory=dict)

    @property
    def serving_pid(self) -> int:
        """The process that runs the views: gunicorn's (first) worker, or runserver itself."""
        if self.kind == "gunicorn":
            return wait_for(lambda: children(self.process.pid), 30, "a gunicorn worker")[0]
        return self.process.pid

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 120)
        kwargs.setdefault("allow_redirects", False)
        return requests.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        stop(self.process)


def production_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for ``config.settings.production`` on loopback over plain HTTP, data in ``var_dir``."""
    from django.conf import settings
    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "PYTHONPATH": str(REPO_ROOT),
        "SECRET_KEY": get_random_secret_key() + get_random_secret_key(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        "SEARCH_INDEX_DIR": str(var_dir / "search-index"),
        "ENCODER_CACHE_DIR": str(settings.ENCODER_CACHE_DIR),
        "CELERY_BROKER_URL": "",
        "ENCODER_CPU_THREADS": "1",
    }
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    env.pop("TEST_VAR_DIR", None)
    env.update(extra)
    return env


def start_server(
    *, kind: str = "gunicorn", env: dict[str, str], log: Path, args: tuple[str, ...] = (), host: str = "127.0.0.1",
    command: str | None = None,
) -> Server:
    """Start ``kind`` (``"gunicorn"``: one sync worker unless ``args`` say otherwise; ``"runserver"``:
    without the autoreloader) on a free port of ``host`` and wait until it answers.

    ``command`` (a shell line such as a Makefile recipe prints, ``{port}`` in it) is run instead;
    its leading ``NAME=value`` words go into the environment, and ``host`` must be the one it binds.
    """
    port = free_port()
    if command is not None:
        words = shlex.split(command.format(port=port))
        while words and "=" in words[0] and not words[0].startswith(("-", "/", ".")):
            name, _, value = words.pop(0).partition("=")
            env = {**env, name: value}
        command = words
    elif kind == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"{host}:{port}",
                   "--workers", "1", "--timeout", "120", *args]
    elif kind == "runserver":
        command = [sys.executable, "manage.py", "runserver", f"{host}:{port}", "--noreload", *args]
    else:
        raise ValueError(f"Unknown server kind {kind!r}; choose gunicorn or runserver.")
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://{host}:{port}", process, log, kind, env)
    try:
        wait_for(lambda: process.poll() is not None or _answers(server.url), START_TIMEOUT_S, f"{kind} to answer")
    except BaseException:
        stop(process)
        raise
    if process.poll() is not None:
        pytest.fail(f"{kind} exited with {process.returncode}:\n{server.log_tail()}")
    return server


def _answers(url: str) -> bool:
    try:
        requests.get(url + "/api/does-not-exist", timeout=5)
        return True
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def server_factory(django_db_setup, tmp_path_factory) -> Iterator[Callable[..., Server]]:
    """``start(kind="gunicorn", settings="config.settings.production", env=None, args=())``: a real
    server on the test database, in a fresh VAR_DIR, stopped at the end of the module."""
    started: list[Server] = []

    def start(*, kind: str = "gunicorn", settings: str = "config.settings.production", env: dict | None = None,
              args: tuple[str, ...] = (), command: str | None = None) -> Server:
        var_dir = tmp_path_factory.mktemp(f"{kind}-var")
        environment = production_env(var_dir, DJANGO_SETTINGS_MODULE=settings, **(env or {}))
        server = start_server(kind=kind, env=environment, log=var_dir / "server.log", args=args, command=command)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A real ``redis-server`` on a free loopback port, in its own folder, nothing persisted."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed; `make redis-server` installs it (Debian package)")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no",
         "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        wait_for(lambda: _pings(client), 20, "redis-server to answer PING")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        stop(process)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


def start_celery_worker(*, env: dict[str, str], log: Path, name: str = "attacks", beat: bool = False) -> subprocess.Popen:
    """``celery -A workers worker --pool=solo`` with ``env`` (which names the broker), ready to take tasks.

    With ``beat``, Celery beat runs inside it (``-B``; its schedule file beside ``log``), so the
    sweeper runs every ``INDEX_SWEEP_INTERVAL_S`` of ``env``.
    """
    command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=solo", "-l", "info", "-n", f"{name}@%h",
               "--without-mingle", "--without-gossip", "--without-heartbeat"]
    if beat:
        command += ["-B", "--schedule", str(log.parent / "celerybeat-schedule")]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: process.poll() is not None or " ready." in log.read_text(), 90, "the Celery worker to start")
    except BaseException:
        stop(process)
        raise
    if process.poll() is not None:
        pytest.fail(f"the Celery worker exited with {process.returncode}:\n{log.read_text()[-3000:]}")
    return process


def celery_send_to(broker_url: str, *, eager: bool = False) -> None:
    """Send this process's tasks to ``broker_url`` (or run them in-process when ``eager``).

    Celery pools producers per connection on first use, eager tasks included, so the pools are
    dropped here the way Celery itself drops them after a fork (``Celery._after_fork``).
    """
    from workers.celery import app

    app._pool = None
    app.amqp._producer_pool = None
    app.conf.update(broker_url=broker_url, task_always_eager=eager)


def session_cookie(server, user) -> dict[str, str]:
    """A signed-in session for ``user``, made with ``server``'s SECRET_KEY (as its login would make it)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import override_settings

    with override_settings(SECRET_KEY=server.env["SECRET_KEY"]):
        session = SessionStore()
        session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                        HASH_SESSION_KEY: user.get_session_auth_hash()})
        session.create()
    return {"Cookie": f"sessionid={session.session_key}"}
