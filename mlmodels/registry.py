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
def _text_encoder(device: str | None, runtime: str | None, cache_dir: str | None) -> TextEncoder:
    threads = configure_cpu_threads()
    return TextEncoder(device=device, runtime=runtime, cache_dir=cache_dir, threads=threads)


@cache
def _image_encoder(device: str | None, runtime: str | None, cache_dir: str | None) -> ImageEncoder:
    threads = configure_cpu_threads()
    return ImageEncoder(device=device, runtime=runtime, cache_dir=cache_dir, threads=threads)


@cache
def _bridge(device: str | None, runtime: str | None, cache_dir: str | None) -> ZeroShotBridge:
    return ZeroShotBridge(_text_encoder(device, runtime, cache_dir))


def _key(cache_dir: str | Path | None) -> str | None:
    return str(cache_dir) if cache_dir is not None else None


def get_text_encoder(
    device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None,
) -> TextEncoder:
    """The shared :class:`TextEncoder` (loaded, and on CPU exported to ONNX if not cached, on first call).

    Args:
        device: ``ENCODER_DEVICE`` (``None``: the environment variable, else auto).
        runtime: ``TEXT_ENCODER_RUNTIME`` (``None``: the environment variable, else auto).
        cache_dir: ``ENCODER_CACHE_DIR`` (``None``: the environment variable, else the user cache).
    """
    with _lock:
        return _text_encoder(device, runtime, _key(cache_dir))


def get_image_encoder(
    device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None,
) -> ImageEncoder:
    """The shared :class:`ImageEncoder`; arguments as for :func:`get_text_encoder`, ``runtime`` being
    ``IMAGE_ENCODER_RUNTIME``."""
    with _lock:
        return _image_encoder(device, runtime, _key(cache_dir))


def get_bridge(device: str | None = None, runtime: str | None = None, cache_dir: str | Path | None = None) -> FusionSpace:
    """The shared zero-shot bridge (cold-start fusion space) over the text encoder :func:`get_text_encoder`
    returns for the same arguments."""
    get_text_encoder(device, runtime, cache_dir)
    with _lock:
        return _bridge(device, runtime, _key(cache_dir))
