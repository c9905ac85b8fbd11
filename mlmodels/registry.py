"""Process-wide, lazily loaded encoder instances.

Models load on first use, once per process (web worker, Celery worker, command), never at
import time.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

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
def _image_encoder(device: str | None, runtime: str | None, cache_dir: str | None) -> ImageEncoder:
    threads = configure_cpu_threads()
    return ImageEncoder(device=device, runtime=runtime, cache_dir=cache_dir, threads=threads)


@cache
def _bridge(device: str | None) -> ZeroShotBridge:
    return ZeroShotBridge(_text_encoder(device))


def get_text_encoder(device: str | None = None) -> TextEncoder:
    """The shared :class:`TextEncoder` (loaded on first call)."""
    with _lock:
        return _text_encoder(device)


def get_image_encoder(
    device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None,
) -> ImageEncoder:
    """The shared :class:`ImageEncoder` (loaded, and on CPU exported to ONNX if not cached, on first call).

    Args:
        device: ``ENCODER_DEVICE`` (``None``: the environment variable, else auto).
        runtime: ``IMAGE_ENCODER_RUNTIME`` (``None``: the environment variable, else auto).
        cache_dir: ``ENCODER_CACHE_DIR`` (``None``: the environment variable, else the user cache).
    """
    with _lock:
        return _image_encoder(device, runtime, str(cache_dir) if cache_dir is not None else None)


def get_bridge(device: str | None = None) -> FusionSpace:
    """The shared zero-shot bridge (cold-start fusion space)."""
    get_text_encoder(device)
    with _lock:
        return _bridge(device)
