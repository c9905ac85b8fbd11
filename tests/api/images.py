"""Photos made by the tests with Pillow (never copied from the catalog)."""

from __future__ import annotations

import io

from PIL import Image


def photo_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), color=(200, 30, 30), exif_orientation: int | None = None,
                exif_text: str | None = None) -> bytes:
    """An image of ``size`` (width, height) in ``fmt``; a JPEG may carry EXIF orientation and a maker note."""
    image = Image.new("RGB", size, color)
    # A second colour in the top-left quarter, so a rotation is visible in the pixels.
    image.paste((20, 20, 220), (0, 0, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    kwargs = {}
    if exif_orientation is not None or exif_text is not None:
        exif = Image.Exif()
        if exif_orientation is not None:
            exif[0x0112] = exif_orientation
        if exif_text is not None:
            exif[0x010F] = exif_text  # Make
            exif[0x8298] = exif_text  # Copyright
        kwargs["exif"] = exif.tobytes()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()
