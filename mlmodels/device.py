"""Device selection for the encoders."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

VALID_DEVICES = ("auto", "cpu", "cuda")


def select_device(preferred: str | None = None) -> torch.device:
    """Return the torch device the encoders run on.

    Args:
        preferred: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
            Defaults to the ``ENCODER_DEVICE`` environment variable, else ``"auto"``.

    Raises:
        ValueError: ``preferred`` is not one of :data:`VALID_DEVICES`, or ``"cuda"`` was asked
            for on a machine without CUDA.
    """
    import torch  # heavy: loaded when an encoder is first built (or its runtime described), never at start-up

    choice = (preferred or os.environ.get("ENCODER_DEVICE") or "auto").lower()
    if choice not in VALID_DEVICES:
        raise ValueError(f"Unknown encoder device {choice!r}; valid values: {', '.join(VALID_DEVICES)}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("ENCODER_DEVICE=cuda but torch sees no CUDA device; use 'auto' or 'cpu'")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


#: torch intra-op threads per process on CPU. Measured here (2 cores, busy): indexing 96
#: Flipkart products took 6.6 s of CPU with 1 thread and 38.9 s with torch's default 2 (OpenMP
#: threads spinning against each other and against the other processes), 56 s against 186 s
#: wall. Web and Celery workers already run one process per core, so one thread each.
DEFAULT_CPU_THREADS = 1


def cpu_threads(threads: int | None = None) -> int:
    """CPU threads per encoder: ``threads``, else ``ENCODER_CPU_THREADS``, else :data:`DEFAULT_CPU_THREADS` (nothing is set).

    Raises:
        ValueError: not a positive integer.
    """
    raw = threads if threads is not None else os.environ.get("ENCODER_CPU_THREADS", DEFAULT_CPU_THREADS)
    try:
        n = int(raw)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ValueError(f"ENCODER_CPU_THREADS must be a positive integer, got {raw!r}")
    return n


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads to :func:`cpu_threads` and return the number set.

    Raises:
        ValueError: not a positive integer.
    """
    import torch  # heavy: only encoders that run on torch call this

    n = cpu_threads(threads)
    torch.set_num_threads(n)
    return n
