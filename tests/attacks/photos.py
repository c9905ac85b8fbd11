"""Hostile and heavy photos for the attack tests, made with Pillow (never taken from the catalog)."""

from __future__ import annotations

import io

from PIL import Image


def strip_png(width: int = 8, height: int = 60_000) -> bytes:
    """A one-colour PNG of ``width`` x ``height`` px: about a kilobyte for 8 x 60,000 px."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


def large_photo(fmt: str, size: tuple[int, int]) -> bytes:
    """A photo-sized image of a few colour bands (small on disk, ``size`` px once decoded)."""
    image = Image.new("RGB", size, (30, 90, 160))
    for i in range(8):
        image.paste((20 * i, 200 - 20 * i, 90), (0, i * size[1] // 8, size[0], i * size[1] // 8 + size[1] // 16))
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def small_photo(colour: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (256, 192)) -> bytes:
    """An ordinary JPEG product photo."""
    buf = io.BytesIO()
    image = Image.new("RGB", size, colour)
    image.paste((20, 20, 220), (0, 0, size[0] // 2, size[1] // 2))
    image.save(buf, format="JPEG")
    return buf.getvalue()
