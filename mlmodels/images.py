"""Safe decoding of product and query photos with Pillow.

Every photo that reaches an encoder or the media storage goes through :func:`open_image`, so
corrupt, truncated, non-image, oversized and decompression-bomb files are refused with a reason
a person can act on, before any model sees them.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest upload accepted, in bytes. 10 MiB holds any phone photo at full JPEG quality.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: Largest image accepted, in pixels (width x height). 40 MP covers current phone cameras;
#: a 50 MP photo or a decompression bomb is refused before its pixels are decoded.
DEFAULT_MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
#: The reasons people read: what is wrong with the file, and what to do (never the decoder's words).
NOT_A_PHOTO = "This file is not a photo we can open. Try a JPEG or PNG."
DAMAGED = "The photo's data is truncated or corrupt, so it cannot be opened. Save the photo again, or choose another one."
#: What Pillow raises on damaged data, while reading the header or the pixels.
_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


class ImageRejected(ValueError):
    """A photo could not be used; ``reason`` is a sentence meant for the person who sent it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    """A decoded photo: RGB pixels with EXIF orientation applied, metadata dropped."""

    image: Image.Image
    format: str
    width: int
    height: int


def open_image(
    source: bytes | str | Path | BinaryIO,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DecodedImage:
    """Decode a photo safely.

    Args:
        source: raw bytes, a filesystem path, or a binary file object.
        max_bytes: refuse larger files (bytes).
        max_pixels: refuse images with more pixels than this (width x height), checked from
            the header before decoding, and passed to Pillow's decompression-bomb guard.

    Returns:
        The decoded image in RGB with EXIF rotation applied.

    Raises:
        ImageRejected: empty, too large, not an image, an unsupported format, truncated or
            corrupt data, or too many pixels.
    """
    data = _read_bytes(source, max_bytes)
    if not data:
        raise ImageRejected("The file is empty (0 bytes).")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            probe = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageRejected(NOT_A_PHOTO) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(
                f"This photo has more pixels than we can open; the limit is {_megapixels(max_pixels)} megapixels. "
                "Try a smaller copy of the photo."
            ) from None
        except _CORRUPT:  # e.g. a JPEG cut off inside its header: "Truncated File Read"
            raise ImageRejected(DAMAGED) from None
        fmt = probe.format or "unknown"
        if fmt not in ALLOWED_FORMATS:
            raise ImageRejected(f"Image format {fmt} is not accepted; use one of {', '.join(ALLOWED_FORMATS)}.")
        width, height = probe.size
        if width * height > max_pixels:
            raise ImageRejected(_too_many_pixels((width, height), max_pixels))
        if width < 8 or height < 8:
            raise ImageRejected(f"The image is too small ({width}x{height} px); send at least 8x8 px.")
        try:
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                probe.load()
                image = ImageOps.exif_transpose(probe)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
            image = image.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(_too_many_pixels((width, height), max_pixels)) from None
        except _CORRUPT:
            raise ImageRejected(DAMAGED) from None
    return DecodedImage(image=image, format=fmt, width=image.width, height=image.height)


def _read_bytes(source: bytes | str | Path | BinaryIO, max_bytes: int) -> bytes:
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageRejected(f"Photo file {path.name!r} does not exist.")
        if path.stat().st_size > max_bytes:
            raise ImageRejected(_too_big(path.stat().st_size, max_bytes))
        data = path.read_bytes()
    else:
        if hasattr(source, "seek"):
            source.seek(0)
        data = source.read(max_bytes + 1)
        if len(data) > max_bytes:  # only the first max_bytes + 1 were read: the size is unknown
            raise ImageRejected(f"The file is larger than the {_human_size(max_bytes)} limit.")
    if len(data) > max_bytes:
        raise ImageRejected(_too_big(len(data), max_bytes))
    return data


def _human_size(n: int) -> str:
    """``10 MB``, ``11.5 MB``, ``4.9 KB`` (binary units, as file managers show them)."""
    value, unit = (n / 1048576, "MB") if n >= 1048576 else (n / 1024, "KB")
    return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"


def _too_big(size: int, max_bytes: int) -> str:
    return f"The file is {_human_size(size)}; the limit is {_human_size(max_bytes)}."


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:g}"


def _too_many_pixels(size: tuple[int, int], max_pixels: int) -> str:
    return f"The image is {size[0]}x{size[1]} px; the limit is {_megapixels(max_pixels)} megapixels."
