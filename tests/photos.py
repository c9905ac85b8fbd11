"""Photos made in the tests with Pillow: good ones, and each kind of bad upload."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

#: Just over the 10 MB upload limit; only the first bytes look like a JPEG.
OVERSIZED_JPEG = b"\xff\xd8\xff" + b"\0" * (11 * 1024 * 1024)
#: A JPEG cut off inside its header (Pillow fails while opening, not while decoding).
HEADER_CUT_JPEG = b"\xff\xd8\xff\xe0 cut off inside the JPEG header"
NOT_AN_IMAGE = b"These are my shopping notes, not a photo.\n" * 20


def png_bytes(size: tuple[int, int] = (64, 64), colour: tuple[int, int, int] = (200, 30, 30), mode: str = "RGB") -> bytes:
    """A solid-colour PNG; a solid colour keeps even a 50-megapixel image small on disk."""
    buf = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else 128).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(size: tuple[int, int] = (320, 240)) -> bytes:
    """A gradient JPEG (enough entropy that cutting it short leaves a truncated scan)."""
    buf = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels: a decompression bomb's calling card."""
    data = png_bytes((8, 8))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return data[:8] + patched + data[8 + 8 + len(ihdr) + 4:]
