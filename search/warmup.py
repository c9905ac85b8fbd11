"""Warm start: load what a search needs before the first shopper asks, in a background thread.

Web processes start it when the WSGI or ASGI application is built (``config/wsgi.py``,
``config/asgi.py``: ``runserver``, gunicorn and uvicorn workers alike), Celery workers at
``worker_process_init`` (``workers/celery.py``); management commands and tests never do. The
thread loads the encoders (``TEXT_ENCODER``, ``IMAGE_ENCODER``, ``ADDITIONAL_TEXT_ENCODERS``),
opens the index, loads the fusion space the live index was built in, and runs one probe of each
encoder and retriever, so the first search pays none of it. Meanwhile the process serves: a
search that arrives first waits for the same loads (the registry loads each model once), and
``/readyz`` answers 503 with what is still loading (:mod:`search.health`).

A failed warm-up is logged and reported by ``/readyz``; searches still load lazily, and
``/readyz`` tries the warm-up again after :data:`RETRY_AFTER_S`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from django.conf import settings
from django.urls import get_resolver
from PIL import Image

from search.backends import get_backend
from search.backends.base import SearchBackendError
from search.embedding import encoders, spaces
from search.translation import translate_query

logger = logging.getLogger(__name__)

#: A failed warm-up is started again by ``/readyz`` after this many seconds.
RETRY_AFTER_S = 30.0
#: The probe query each encoder and retriever runs once.
PROBE_TEXT = "warm start probe"


@dataclass
class WarmUpStatus:
    """Where this process's warm-up stands.

    Attributes:
        state: ``"cold"`` (not started), ``"warming"``, ``"ready"`` or ``"failed"``.
        step: what is loading now (``"warming"``), or the step that failed.
        error: why it failed (``"failed"``).
        started_at, finished_at: ``time.monotonic()`` values, or ``None``.
        steps_s: seconds each finished step took, in order.
        index_error: why the index could not be opened during the warm-up (the encoders are warm anyway).
        pid: the process it belongs to (a forked child starts cold).
    """

    state: str = "cold"
    step: str = ""
    error: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    steps_s: dict[str, float] = field(default_factory=dict)
    index_error: str = ""
    pid: int = field(default_factory=os.getpid)


_lock = threading.Lock()
_status = WarmUpStatus()


def status() -> WarmUpStatus:
    """A copy of this process's warm-up status (a process forked after a warm-up starts cold)."""
    global _status
    with _lock:
        if _status.pid != os.getpid():
            _status = WarmUpStatus()
        return WarmUpStatus(**{**asdict(_status), "steps_s": dict(_status.steps_s)})


def _set(**changes) -> None:
    with _lock:
        for name, value in changes.items():
            setattr(_status, name, value)


def _step(name: str, load) -> None:
    _set(step=name)
    started = time.perf_counter()
    load()
    with _lock:
        _status.steps_s[name] = round(time.perf_counter() - started, 3)


def _open_index() -> None:
    """Open the live index and run one BM25 and one kNN probe on it."""
    backend = get_backend()
    backend.count()
    backend.search_text(PROBE_TEXT, limit=1)
    backend.search_vector("text", encoders.text_encoder().encode_query([PROBE_TEXT])[0], k=1)


def _load_space() -> None:
    """Load the fusion space queries will use: the live index's, else (no index yet) the active one."""
    try:
        space = spaces.space_for_index(get_backend())
    except (SearchBackendError, OSError, ValueError):
        space = spaces.get_space()
    if space is not None:
        space.text(np.zeros((1, encoders.text_dim()), np.float32))


def warm_up() -> WarmUpStatus:
    """Load everything a search needs, now, in this thread; record progress in :func:`status`.

    Steps: the URL configuration (views, API, their imports), the text encoder, the image encoder
    (one probe photo), each additional text encoder, the index (opened, one BM25 and one kNN
    probe), and the fusion space queries use (the live index's: the zero-shot bridge or a trained
    head), and the query translation dictionaries (``SEARCH_QUERY_TRANSLATION``). An index that cannot be opened (engine down, no index yet) is recorded in
    ``index_error`` and does not fail the warm-up: ``/readyz`` checks the index on every call.

    Returns:
        The final status (``state`` ``"ready"`` or ``"failed"``). Never raises.
    """
    _set(state="warming", step="", error="", started_at=time.monotonic(), finished_at=None, steps_s={}, index_error="")
    try:
        _step("urls", lambda: get_resolver().url_patterns)
        _step("text encoder", lambda: encoders.text_encoder().encode_query([PROBE_TEXT]))
        _step("image encoder", lambda: encoders.image_encoder().encode([Image.new("RGB", (224, 224), (128, 128, 128))]))
        for spec in encoders.additional_text_specs():
            _step(f"{spec.name} text encoder", lambda spec=spec: encoders.additional_text_encoder(spec).encode_query([PROBE_TEXT]))
        try:
            _step("index", _open_index)
        except (SearchBackendError, OSError, ValueError) as exc:
            _set(index_error=str(exc))
            logger.warning("Warm start: the search index cannot be opened yet: %s", exc)
        _step("fusion space", _load_space)
        if settings.SEARCH_QUERY_TRANSLATION != "off":  # the dictionaries load on a process's first Chinese or Hindi query
            _step("query translation", lambda: (translate_query("毛巾"), translate_query("तौलिया")))
    except Exception as exc:  # noqa: BLE001 (reported by /readyz; searches still load lazily and raise there)
        logger.exception("Warm start failed at %s", status().step)
        _set(state="failed", error=f"{type(exc).__name__}: {exc}", finished_at=time.monotonic())
        return status()
    _set(state="ready", step="", finished_at=time.monotonic())
    done = status()
    logger.info("Warm start: ready in %.1f s (%s)", done.finished_at - done.started_at,
                ", ".join(f"{name} {s:.1f} s" for name, s in done.steps_s.items()))
    return done


def start(*, reason: str) -> bool:
    """Start :func:`warm_up` in a daemon thread unless this process has one running or done.

    A failed warm-up is started again once :data:`RETRY_AFTER_S` have passed.

    Args:
        reason: who asks (``"web"``, ``"celery worker"``, ``"readyz"``), for the log.

    Returns:
        True when a thread was started by this call.
    """
    global _status
    with _lock:
        if _status.pid != os.getpid():
            _status = WarmUpStatus()
        if _status.state in ("warming", "ready"):
            return False
        if _status.state == "failed" and time.monotonic() - (_status.finished_at or 0.0) < RETRY_AFTER_S:
            return False
        _status.state, _status.started_at = "warming", time.monotonic()
    logger.info("Warm start (%s): loading the encoders and the index in the background", reason)
    threading.Thread(target=warm_up, name="search-warm-up", daemon=True).start()
    return True


def start_at_boot(reason: str) -> bool:
    """:func:`start` when ``SEARCH_WARM_START`` is on (the default); called by the web and worker entry points."""
    return start(reason=reason) if settings.SEARCH_WARM_START else False


def reset() -> None:
    """Forget the status (tests)."""
    global _status
    with _lock:
        _status = WarmUpStatus()
