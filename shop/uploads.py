"""Upload handling: a photo larger than ``MAX_IMAGE_BYTES`` is refused with a reason, not stored.

Django streams file uploads to handlers chunk by chunk (``FILE_UPLOAD_HANDLERS``).
:class:`PhotoSizeLimitHandler` sits first in that chain: it passes chunks on while a file is
within the limit and, once it is over, stops passing them (the rest of the body is read and
discarded, so memory and disk stay bounded) and hands the view an :class:`OversizedUpload` that
carries the reason. Views and forms check ``rejected_reason`` before decoding anything, so a
huge upload becomes an HTTP 400 or a form error that says how big it was and what the limit is.
Any upload field benefits (the admin, an API): no handler later in the chain sees the excess.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework import exceptions

from mlmodels.images import ImageRejected


def human_size(n: int) -> str:
    """``10 MB``, ``11.5 MB``, ``4.9 KB``: the units ``mlmodels.images`` uses in its reasons."""
    value, unit = (n / 1048576, "MB") if n >= 1048576 else (n / 1024, "KB")
    return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"


def too_big_reason(size: int, limit: int) -> str:
    """The sentence shown for an upload of ``size`` bytes over ``limit`` bytes."""
    return f"The file is {human_size(size)}; the limit is {human_size(limit)}."


class _Refused(io.BytesIO):
    """File content that cannot be read: reading raises ``ImageRejected`` with the reason."""

    def __init__(self, reason: str):
        super().__init__(b"")
        self.reason = reason

    def read(self, *args) -> bytes:
        raise ImageRejected(self.reason)

    readline = read


class OversizedUpload(UploadedFile):
    """Stands in for a file that was over the limit: the size seen and the reason, no content.

    Code that reads it anyway (e.g. ``open_image(upload)``) gets ``ImageRejected`` with the
    same reason, so an oversized upload can never pass for an empty file.

    Attributes:
        rejected_reason: a sentence for the person who sent the file.
    """

    def __init__(self, name: str, size: int, content_type: str, limit: int):
        reason = too_big_reason(size, limit)
        super().__init__(_Refused(reason), name=name, content_type=content_type, size=size)
        self.rejected_reason = reason


class PhotoSizeLimitHandler(FileUploadHandler):
    """First upload handler: files over ``settings.MAX_IMAGE_BYTES`` become :class:`OversizedUpload`."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.MAX_IMAGE_BYTES
        self.received = 0
        self.over = False

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        self.received = 0
        self.over = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.over = True
            return None  # later handlers (memory, temporary file) get no more of it
        return raw_data

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if not self.over:
            return None  # the next handler returns the real file
        return OversizedUpload(self.file_name or "upload", self.received, self.content_type or "", self.limit)


def photo_limits() -> dict[str, int]:
    """The photo limits in settings, as ``mlmodels.images.open_image`` keyword arguments:
    ``MAX_IMAGE_BYTES``, ``MAX_IMAGE_PIXELS``, ``MAX_IMAGE_SIDE`` and ``MAX_IMAGE_DECODE_BYTES``."""
    return {
        "max_bytes": settings.MAX_IMAGE_BYTES, "max_pixels": settings.MAX_IMAGE_PIXELS,
        "max_side": settings.MAX_IMAGE_SIDE, "max_decode_bytes": settings.MAX_IMAGE_DECODE_BYTES,
    }


def read_upload(upload, field: str, limit: int) -> bytes:
    """The bytes of an uploaded file, at most ``limit + 1`` of them (so "too big" stays detectable).

    Raises:
        ValidationError: an upload handler already refused the file (it carries ``rejected_reason``).
    """
    reason = getattr(upload, "rejected_reason", None)
    if reason:
        raise exceptions.ValidationError({field: reason}, code="image_rejected")
    return upload.read(limit + 1)
