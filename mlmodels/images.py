"""Safe decoding of product and query photos with Pillow.

Every photo that reaches an encoder or the media storage goes through :func:`open_image`, so
corrupt, truncated, non-image, oversized and decompression-bomb files are refused with a reason
a person can act on, before any model sees them.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

#: Largest upload accepted, in bytes. 10 MiB holds any phone photo at full JPEG quality.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: Largest image accepted, in pixels (width x height). 40 MP covers current phone cameras;
#: a 50 MP photo or a decompression bomb is refused before its pixels are decoded.
DEFAULT_MAX_PIXELS = 40_000_000
#: Longest side accepted, in pixels, read from the header like the pixel count. 12,000 px holds a
#: 40 MP photo up to a 3.6:1 panorama; a strip of 8 x 60,000 px (480,000 pixels, a ~1 KB PNG)
#: is refused: it is not a photo, and stretching it to an encoder's input cost ~1.5 GB.
DEFAULT_MAX_SIDE = 12_000
#: Most memory the decoder may allocate for one photo's pixels, in bytes. Pillow keeps 4 bytes
#: per pixel for RGB and RGBA, 1 for greyscale and palette images; a JPEG asked for a smaller
#: size (``fit``) is decoded at 1/2 to 1/8 scale (``Image.draft``), so this applies after it. A
#: WebP costs four times its pixels (libwebp decodes into buffers of its own, then Pillow copies).
#: 128 MiB: a 33-megapixel PNG, or any JPEG within the pixel limit, stays within it, and one
#: request never grows a server process by more than ~150 MB (tests/attacks/test_memory.py).
DEFAULT_MAX_DECODE_BYTES = 128 * 1024 * 1024
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
#: The reasons people read: what is wrong with the file, and what to do (never the decoder's words).
NOT_A_PHOTO = "This file is not a photo we can open. Try a JPEG or PNG."
DAMAGED = "The photo's data is truncated or corrupt, so it cannot be opened. Save the photo again, or choose another one."
#: What Pillow raises on damaged data, while reading the header or the pixels.
_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
#: EXIF orientation -> the transpose that shows the photo upright (as ``ImageOps.exif_transpose``).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}
#: Modes ``Image.reduce`` cannot take: palette and bilevel images are shrunk by nearest neighbour
#: (no full-size RGB copy); others are converted to RGB first (counted in the decode budget).
_NEAREST_MODES = ("1", "P", "PA")


class ImageRejected(ValueError):
    """A photo could not be used; ``reason`` is a sentence meant for the person who sent it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    """A decoded photo: RGB pixels with EXIF orientation applied, metadata dropped.

    Attributes:
        image: the pixels, RGB; at most ``fit`` px on the longer side when ``open_image`` was given one.
        format: the file's format as Pillow names it (``JPEG``, ``PNG``, ...).
        width, height: the photo's size as sent (after EXIF rotation), in pixels.
    """

    image: Image.Image
    format: str
    width: int
    height: int


def open_image(
    source: bytes | str | Path | BinaryIO,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
    fit: int | None = None,
) -> DecodedImage:
    """Decode a photo safely, with memory bounded by the limits, whatever the header declares.

    The size is read from the header and checked (longest side, pixel count, decode memory)
    before any pixel is decoded. With ``fit``, a JPEG is decoded directly at the smallest DCT
    scale (1/2 to 1/8) still at least ``fit`` px (``Image.draft``), other formats are shrunk by
    an integer factor right after decoding (``Image.reduce``, band by band for transparent
    images), and rotation, RGB conversion and the final resize run on the small copy, so the
    cost after decoding is proportional to the output, not the input.

    Args:
        source: raw bytes, a filesystem path, or a binary file object.
        max_bytes: refuse larger files (bytes).
        max_pixels: refuse images with more pixels than this (width x height).
        max_side: refuse images whose width or height is over this (pixels).
        max_decode_bytes: refuse images whose decoded pixels would take more memory (bytes).
        fit: if given, the returned image is at most ``fit`` px on its longer side (aspect kept;
            smaller images are not enlarged).

    Returns:
        The decoded image in RGB with EXIF rotation applied, metadata dropped.

    Raises:
        ImageRejected: empty, too large, not an image, an unsupported format, truncated or
            corrupt data, too long a side, too many pixels, or too much memory to decode.
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
        if max(width, height) > max_side:
            raise ImageRejected(
                f"The image is {width}x{height} px; its sides may be at most {max_side:,} px. Send a photo of the product, scaled down."
            )
        if width * height > max_pixels:
            raise ImageRejected(_too_many_pixels((width, height), max_pixels))
        if width < 8 or height < 8:
            raise ImageRejected(f"The image is too small ({width}x{height} px); send at least 8x8 px.")
        try:
            image, orientation = _decode(probe, fit, max_decode_bytes)
            if orientation in _ORIENTATION:
                image = image.transpose(_ORIENTATION[orientation])
            if image.mode != "RGB":
                image = image.convert("RGB")
            if fit is not None and max(image.size) > fit:
                image.thumbnail((fit, fit), Image.Resampling.BICUBIC, reducing_gap=None)
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(_too_many_pixels((width, height), max_pixels)) from None
        except _CORRUPT:
            raise ImageRejected(DAMAGED) from None
    image.info = {}  # EXIF (its orientation now applied), ICC, comments: nothing travels on
    image.getexif().clear()  # the tags read above are cached on the decoded file
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(image=image, format=fmt, width=width, height=height)


def _decode(probe: Image.Image, fit: int | None, max_decode_bytes: int) -> tuple[Image.Image, int]:
    """Decode ``probe`` within ``max_decode_bytes``, shrunk towards ``fit`` if given; and its EXIF orientation."""
    if fit is not None and probe.format == "JPEG":
        scale = min(1.0, fit / max(probe.size))  # draft() picks the smallest DCT scale at least this large
        probe.draft("RGB", (max(1, math.ceil(probe.width * scale)), max(1, math.ceil(probe.height * scale))))
    cost = _decode_bytes(probe.mode, probe.size, shrunk=fit is not None) * (4 if probe.format == "WEBP" else 1)
    if cost > max_decode_bytes:
        raise ImageRejected(
            f"The image is {probe.width}x{probe.height} px and would take {_human_size(cost)} to open; the limit is "
            f"{_human_size(max_decode_bytes)}. Send a smaller copy{'' if probe.format == 'JPEG' else ', or save it as a JPEG'}."
        )
    probe.load()
    orientation = probe.getexif().get(0x0112, 1)  # after load: a PNG's eXIf chunk may follow its pixels
    if fit is None:
        return probe, orientation
    factor = max(probe.size) // fit  # the box-filtered copy stays at least fit px; thumbnail() finishes
    if factor < 2:
        return probe, orientation
    if probe.mode in ("RGBA", "LA"):  # reduce() would premultiply a full-size copy; one band at a time costs a quarter
        bands = probe.mode[:-1] if probe.mode == "LA" else "RGB"
        small = Image.merge(bands, [probe.getchannel(band).reduce(factor) for band in bands])  # alpha dropped, as convert("RGB") does
    elif probe.mode in _NEAREST_MODES:
        small = probe.resize((max(1, probe.width // factor), max(1, probe.height // factor)), Image.Resampling.NEAREST)
    elif probe.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        small = probe.convert("I").reduce(factor)
    else:
        small = probe.reduce(factor)
    probe.close()
    return small, orientation


def _decode_bytes(mode: str, size: tuple[int, int], *, shrunk: bool) -> int:
    """Bytes Pillow allocates for ``size`` pixels decoded in ``mode``, plus a full-size RGB copy
    (4 bytes a pixel) when the image is converted before it is shrunk, or is not shrunk at all,
    or one band's copy (1 byte a pixel) when an image with alpha is shrunk band by band."""
    pixels = size[0] * size[1]
    decoded = pixels * (1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4)
    if mode.startswith("I;16") or (not shrunk and mode != "RGB"):
        return decoded + pixels * 4  # converted to RGB (or I) at full size
    return decoded + (pixels if mode in ("RGBA", "LA") else 0)  # one band at a time while shrinking


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
