"""Warm start and health checks: ``/healthz`` answers while the process serves, ``/readyz`` answers 503
with a reason until the encoders are warm and the index opens, then 200; a real server started
from ``manage.py runserver`` gets ready by itself and answers its first search.

How fast the first search is after readiness is measured by ``bench/warm_start.py``, not here."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from search import warmup
from search.backends import reset_backends

REPO_ROOT = Path(__file__).resolve().parents[1]
#: A busy 2-core machine loads both encoders and the index in well under this.
READY_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def cold_process():
    warmup.reset()
    yield
    warmup.reset()


def test_healthz_answers_at_once_without_models(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]


def test_readyz_says_what_is_still_loading(client, caplog):
    # given a warm-up under way (its thread is busy with the image encoder)
    warmup._set(state="warming", step="image encoder", started_at=time.monotonic() - 2, steps_s={"urls": 0.1, "text encoder": 1.5})
    # when a load balancer asks
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/readyz")
    # then it is told to wait, and why, without an error in the log for each poll
    assert caplog.records == []
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["reason"], body["done"]) == ("warming", "loading the image encoder", ["urls", "text encoder"])
    assert body["since_s"] >= 2


def test_readyz_reports_a_failed_warm_up(client):
    warmup._set(state="failed", step="image encoder", error="ImportError: no module named 'efficientnet_lite_pytorch'",
                started_at=time.monotonic(), finished_at=time.monotonic())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "the warm start failed at image encoder: ImportError: no module named 'efficientnet_lite_pytorch'"


def test_readyz_and_healthz_refuse_writes(client):
    assert client.post("/readyz").status_code == 405
    assert client.post("/healthz").status_code == 405


@pytest.mark.slow
@pytest.mark.django_db
def test_after_the_warm_up_readyz_answers_200_with_the_index_size(client, indexed_catalog):
    # when the warm-up runs (here in the test's own thread)
    done = warmup.warm_up()
    # then every step ran, and the process is ready
    assert done.state == "ready", done.error
    assert list(done.steps_s) == ["urls", "text encoder", "image encoder", "index", "fusion space", "query translation"]
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["encoders"] == {"text": "minilm", "image": "efficientnet-lite0", "additional": []}
    assert body["index"]["documents"] == len(indexed_catalog.product_ids)


@pytest.mark.slow
def test_warm_encoders_but_an_index_that_cannot_open_is_not_ready(client, settings, tmp_path):
    # given the encoders warm, but an index folder that is a file
    warmup._set(state="ready", started_at=time.monotonic(), finished_at=time.monotonic())
    blocker = tmp_path / "index"
    blocker.write_text("not a folder")
    settings.SEARCH_BACKENDS = {"default": {**settings.SEARCH_BACKENDS["default"], "INDEX_DIR": blocker}}
    reset_backends()
    try:
        response = client.get("/readyz")
    finally:
        reset_backends()
    # then readiness says the index is the problem
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["reason"].startswith("the search index cannot be opened: ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, ConnectionError, OSError):
        return 0, {}


@pytest.mark.slow
@pytest.mark.django_db
def test_a_real_server_warms_up_by_itself_and_answers_its_first_search(indexed_catalog, tmp_path):
    # given `manage.py runserver` on the test database, media and index, with the default warm start
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_VAR_DIR": str(django_settings.VAR_DIR),
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "PYTHONPATH": str(REPO_ROOT),
    }
    env.pop("SEARCH_WARM_START", None)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                                  cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # when it comes up: liveness first, then readiness, with nobody searching
        _wait_for(lambda: server.poll() is not None or _get(f"{base}/healthz")[0] == 200, 120, "the server to answer /healthz")
        assert server.poll() is None, log.read_text()[-3000:]
        _wait_for(lambda: server.poll() is not None or _get(f"{base}/readyz")[0] == 200, READY_TIMEOUT_S, "the server to be ready")
        assert server.poll() is None, log.read_text()[-3000:]
        status, ready = _get(f"{base}/readyz")
        # then it loaded everything by itself and the first search answers
        assert (status, ready["status"], ready["index"]["documents"]) == (200, "ready", len(indexed_catalog.product_ids))
        assert "Warm start (web): loading the encoders and the index in the background" in log.read_text()
        status, page = _get(f"{base}/api/search?q=cotton%20bath%20towel")
        assert status == 200
        assert "towel" in page["results"][0]["title"].lower()
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
