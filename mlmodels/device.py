"""Device selection for the encoders."""

from __future__ import annotations

import os

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
    choice = (preferred or os.environ.get("ENCODER_DEVICE") or "auto").lower()
    if choice not in VALID_DEVICES:
        raise ValueError(f"Unknown encoder device {choice!r}; valid values: {', '.join(VALID_DEVICES)}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("ENCODER_DEVICE=cuda but torch sees no CUDA device; use 'auto' or 'cpu'")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)
