"""A whole site on loopback for the fault and concurrency attacks: database, Redis, web server, Celery worker.

``tests/attacks/servers.py`` starts the web servers and the Celery worker; this module adds what
the fault tests need around them:

- :class:`RedisServer`: a real ``redis-server`` on a fixed free port that a test can stop and
  start again (its queue is not persisted, so what was queued is lost, as in a crash);
- :class:`PostgresCluster`: Debian's PostgreSQL (``initdb`` into a temporary folder, ``pg_ctl``
  on a free loopback port; as the ``postgres`` user when the tests run as root), or a skip with
  the reason when it is not installed;
- :func:`database_url`: the URL of the database this test run uses, for the servers;
- :class:`Api`: a small JSON client with a merchant's token.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.attacks.servers import REPO_ROOT, free_port, stop, wait_for

#: Longest wait for the worker's first task (it loads both encoders; slow on a busy 2-core box).
WORKER_WARM_TIMEOUT_S = 240


# -- Redis -------------------------------------------------------------------------------------------
class RedisServer:
    """``redis-server`` on 127.0.0.1:``port`` in ``folder``, nothing persisted; :meth:`stop` and :meth:`start` at will."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed; `make redis-server` installs it (Debian package)")
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "",
             "--appendonly", "no", "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        wait_for(self.answers, 20, "redis-server to answer PING")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None
        wait_for(lambda: not self.answers(), 10, "redis-server to stop")

    def answers(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


# -- PostgreSQL ----------------------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl`` (Debian's layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found and (found[-1].parent / "initdb").exists() else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust authentication, fsync off), with database ``shop``."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl); `make postgresql` installs Debian's package")
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("Tests run as root and there is no 'postgres' user for PostgreSQL to run as")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        # Not under pytest's tmp folder: root-only (0700), which the postgres user cannot enter.
        self.folder = Path(tempfile.mkdtemp(prefix="bazaar-pg-"))
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgres://shop@127.0.0.1:{self.port}/shop"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        data = self.folder / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", "shop", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "postgres.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50", "start")
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=shop dbname=postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE shop")

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def database_url() -> str:
    """The URL of this test run's database (the test database pytest-django made), for another process."""
    from django.db import connection

    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{cfg['NAME']}"
    if connection.vendor == "postgresql":
        auth = cfg["USER"] + (f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else "")
        return f"postgres://{auth}@{cfg.get('HOST') or '127.0.0.1'}:{cfg.get('PORT') or 5432}/{cfg['NAME']}"
    raise NotImplementedError(f"No URL for a {connection.vendor} test database")


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``manage.py <args>`` with ``env``; returns its output, fails the test with it on an error."""
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        pytest.fail(f"manage.py {' '.join(args)} exited with {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


# -- the API -----------------------------------------------------------------------------------------------
@dataclass
class Api:
    """JSON requests to a server's API with a token (``Authorization: Token <key>``).

    One connection per request (``Connection: close``): a kept-alive connection that gunicorn
    closes after its keep-alive timeout would otherwise be reset under a request sent on it,
    an error of the client's, not the server's.
    """

    url: str
    token: str = ""

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Connection": "close", **kwargs.pop("headers", {})}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        return requests.request(method, self.url + path, headers=headers, timeout=kwargs.pop("timeout", 120), **kwargs)

    def login(self, username: str, password: str) -> Api:
        response = self.call("POST", "/api/auth/token/", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return Api(self.url, response.json()["token"])


def wait_until(condition, timeout: float, what: str, interval: float = 0.5):
    """:func:`tests.attacks.servers.wait_for` with a slower default poll (each poll is an HTTP request)."""
    return wait_for(condition, timeout, what, interval=interval)
