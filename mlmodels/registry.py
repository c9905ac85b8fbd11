"""Process-wide, lazily loaded encoder instances.

Models load on first use, once per process (web worker, Celery worker, command), never at
import time.
"""

from __future__ import annotations

import threading
from functools import cache

from mlmodels.device import configure_cpu_threads
from mlmodels.fusion import FusionSpace, ZeroShotBridge
from mlmodels.image import ImageEncoder
from mlmodels.text import TextEncoder

_lock = threading.Lock()


@cache
def _text_encoder(device: str | None) -> TextEncoder:
    configure_cpu_threads()
    return TextEncoder(device=device)


@cache
def _image_encoder(device: str | None) -> ImageEncoder:
    configure_cpu_threads()
    return ImageEncoder(device=device)


@cache
def _bridge(device: str | None) -> ZeroShotBridge:
    return ZeroShotBridge(_text_encoder(device))


def get_text_encoder(device: str | None = None) -> TextEncoder:
    """The shared :class:`TextEncoder` (loaded on first call)."""
    with _lock:
        return _text_encoder(device)


def get_image_encoder(device: str | None = None) -> ImageEncoder:
    """The shared :class:`ImageEncoder` (loaded on first call)."""
    with _lock:
        return _image_encoder(device)


def get_bridge(device: str | None = None) -> FusionSpace:
    """The shared zero-shot bridge (cold-start fusion space)."""
    get_text_encoder(device)
    with _lock:
        return _bridge(device)
