"""Fixtures for the search backend tests: an Elasticsearch backend over the recorded fake cluster."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from search.backends.base import SearchDocument
from tests.backends.fake_es import FakeCluster, node_class

#: Small vector dimensions keep recorded bodies short; the mapping takes them from the backend.
DIMS = {"text": 8, "image": 16, "fused": 8}


def unit(seed: int, dim: int) -> np.ndarray:
    """A deterministic L2-normalised float32 vector ``(dim,)``."""
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def product_doc(pid: int, title: str = "Cotton bath towel", **fields) -> SearchDocument:
    """A product document with all three vectors."""
    fields.setdefault("brand", "Acme")
    fields.setdefault("category_path", ["Home Furnishing", "Bath Linen", "Towels"])
    fields.setdefault("price", 499.0)
    fields.setdefault("vectors", {role: unit(pid * 10 + i, d) for i, (role, d) in enumerate(DIMS.items())})
    return SearchDocument(id=pid, title=title, **fields)


@pytest.fixture
def fake_es() -> Callable[..., tuple]:
    """``make(version="9.1.0", **params) -> (backend, cluster)``: an Elasticsearch backend whose
    client talks to a :class:`FakeCluster` (a stand-in for a cluster: no server runs here)."""
    from search.backends.elasticsearch import ElasticsearchSearchBackend

    def make(version: str = "9.1.0", cluster: FakeCluster | None = None, **params):
        cluster = cluster or FakeCluster(version=version)
        options = {"URLS": ["http://es.test:9200"], "INDEX": "products", "RETRY_BACKOFF_S": 0.001, "BULK_BACKOFF_S": 0.001,
                   "CLIENT_OPTIONS": {"node_class": node_class(cluster)}, **params}
        return ElasticsearchSearchBackend(options, DIMS), cluster

    return make


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def noida_url(tmp_path_factory) -> str:
    """URL of ``noida-db``, an Elasticsearch-API emulator, started on 127.0.0.1 on a free port.

    noida-db (PyPI, MIT) is a small binary that speaks the Elasticsearch 8 REST API; it lets the
    whole path (official client, ``_bulk``, searches, aliases) run over real HTTP here, where no
    Elasticsearch server can be installed. It is an emulator: it reports version 8.15.3, rejects
    the ``linear`` retriever, ignores some options (e.g. a ``terms`` aggregation's ``include``)
    and is slow past a few thousand documents. Where it and Elastic's API specification
    disagree, the specification wins (``test_es_spec.py``). Stopped at the end of the session.
    """
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    exe = shutil.which("noida-db") or str(Path(sys.executable).parent / "noida-db")
    if not Path(exe).exists():
        pytest.skip("noida-db is not installed (it is a dev dependency: pip install -e '.[dev]')")
    data = tmp_path_factory.mktemp("noida")
    port = _free_port()
    log = (data / "noida.log").open("wb")
    proc = subprocess.Popen(
        [exe, "start", "--data-dir", str(data / "db"), "--host", "127.0.0.1", "--only", "elasticsearch", "--elasticsearch-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,  # the launcher starts a server process: stop the whole group
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"noida-db did not start on {url}: {(data / 'noida.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        import os
        import signal

        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # the server may outlive the launcher in the same group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()


def es_backend_factory(url: str, dims: dict[str, int], request, **params):
    """``make() -> backend`` on index name ``t<random>`` of the cluster at ``url``; its builds
    are deleted when the test ends."""
    import uuid

    from search.backends.elasticsearch import ElasticsearchSearchBackend

    name = f"t{uuid.uuid4().hex[:12]}"
    options = {"URLS": [url], "INDEX": name, "QUANTIZATION": "none", "MAX_RETRIES": 1, **params}

    def cleanup():
        backend = ElasticsearchSearchBackend(options, dims)
        try:
            for index in backend.builds():
                backend.client.indices.delete(index=index)
        except Exception:  # noqa: BLE001 (best effort; the cluster may be gone)
            pass

    request.addfinalizer(cleanup)
    return lambda: ElasticsearchSearchBackend(options, dims)


#: Elasticsearch's built-in token filters that noida-db does not have (it refuses the index).
NOIDA_MISSING_FILTERS = ("indic_normalization", "hindi_normalization")


@pytest.fixture
def emulator_analysis(monkeypatch):
    """Index bodies without the token filters noida-db lacks (:data:`NOIDA_MISSING_FILTERS`):
    the ``words`` analyzer loses its Indic normalisation, nothing else changes. The full body is
    validated against Elastic's specification in ``test_es_spec.py`` / ``test_es_words.py``."""
    from search.backends.elasticsearch import mapping

    real = mapping.analysis

    def emulated(*args, **kwargs):
        body = real(*args, **kwargs)
        for analyzer in body["analyzer"].values():
            analyzer["filter"] = [f for f in analyzer.get("filter", []) if f not in NOIDA_MISSING_FILTERS]
        return body

    monkeypatch.setattr(mapping, "analysis", emulated)
