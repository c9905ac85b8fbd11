"""Safe photo decoding: every bad upload is refused with a reason a person can act on."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mlmodels.images import DEFAULT_MAX_BYTES, ImageRejected, open_image
from tests.factories import photo_bytes

MB = 1024 * 1024
#: What a person reads about a damaged photo: no decoder message in it.
DAMAGED_PHOTO = "The photo's data is truncated or corrupt, so it cannot be opened. Save the photo again, or choose another one."


def reason_for(source, **limits) -> str:
    with pytest.raises(ImageRejected) as caught:
        open_image(source, **limits)
    return caught.value.reason


def png_with_declared_size(width: int, height: int) -> bytes:
    """A valid PNG header that declares ``width`` x ``height`` pixels over a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def noisy_jpeg() -> bytes:
    """A 256x256 photo of noise: no two 8x8 blocks alike, so damage cannot go unnoticed."""
    return photo_bytes(size=(256, 256), seed=1)


def test_zero_byte_file_is_refused():
    # then
    assert reason_for(b"") == "The file is empty (0 bytes)."


def test_bytes_that_are_not_an_image_are_refused():
    # then
    assert reason_for(b"%PDF-1.4 this is a document, not a photo" * 20) == "This file is not a photo we can open. Try a JPEG or PNG."


def test_truncated_jpeg_is_refused(noisy_jpeg):
    # when
    reason = reason_for(noisy_jpeg[: len(noisy_jpeg) // 2])
    # then
    assert reason == DAMAGED_PHOTO


def test_jpeg_with_corrupt_data_is_refused(noisy_jpeg):
    # given: the header survives, the entropy-coded data is zeroed
    corrupt = bytearray(noisy_jpeg)
    corrupt[600:2000] = b"\x00" * 1400
    # then
    assert reason_for(bytes(corrupt)) == DAMAGED_PHOTO


def test_png_with_corrupt_data_is_refused():
    # given
    corrupt = bytearray(photo_bytes(size=(64, 64), fmt="PNG", seed=2))
    corrupt[100:120] = b"\xff" * 20
    # then
    assert reason_for(bytes(corrupt)) == DAMAGED_PHOTO


def test_decompression_bomb_png_is_refused_before_decoding():
    # given: 100,000 x 100,000 pixels declared in a 100-byte file
    bomb = png_with_declared_size(100_000, 100_000)
    # then
    assert len(bomb) < 200
    assert reason_for(bomb) == "This photo has more pixels than we can open; the limit is 40 megapixels. Try a smaller copy of the photo."


def test_png_declaring_more_pixels_than_the_limit_is_refused_with_its_size():
    # given: 60 MP, under Pillow's own bomb guard but over ours
    # then
    assert reason_for(png_with_declared_size(8000, 7500)) == "The image is 8000x7500 px; the limit is 40 megapixels."


def test_fifty_megapixel_photo_is_refused_with_its_size():
    # given: 7000x7143 px of one colour is small on disk
    buf = io.BytesIO()
    Image.new("RGB", (7000, 7143), (10, 120, 200)).save(buf, format="PNG")
    # then
    assert buf.tell() < 1 * MB
    assert reason_for(buf.getvalue()) == "The image is 7000x7143 px; the limit is 40 megapixels."


def test_pixel_limit_can_be_set_by_the_caller():
    # then
    assert reason_for(photo_bytes(size=(200, 100)), max_pixels=10_000) == "The image is 200x100 px; the limit is 0.01 megapixels."


def test_exif_rotation_is_applied():
    # given: a landscape 40x20 photo whose EXIF says "rotate 90 degrees clockwise" (orientation 6)
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = image.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    # when
    decoded = open_image(buf.getvalue())
    # then: portrait, the red half now on top, no EXIF left
    assert (decoded.width, decoded.height) == (20, 40)
    pixels = np.asarray(decoded.image)
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 60
    assert pixels[35, 10, 2] > 200 and pixels[35, 10, 0] < 60
    assert 0x0112 not in decoded.image.getexif()


def test_too_small_image_is_refused():
    # then
    assert reason_for(photo_bytes(size=(4, 4), fmt="PNG")) == "The image is too small (4x4 px); send at least 8x8 px."


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "BMP", "TIFF"])
def test_common_formats_are_accepted_as_rgb(fmt):
    # when
    decoded = open_image(photo_bytes(size=(32, 24), fmt=fmt))
    # then
    assert decoded.format == fmt
    assert (decoded.width, decoded.height) == (32, 24)
    assert decoded.image.mode == "RGB"


def test_transparent_png_becomes_rgb():
    # given
    buf = io.BytesIO()
    Image.new("RGBA", (16, 16), (0, 255, 0, 0)).save(buf, format="PNG")
    # then
    assert open_image(buf.getvalue()).image.mode == "RGB"


def test_an_image_format_outside_the_list_is_refused():
    # given
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, format="ICO")
    # then
    assert reason_for(buf.getvalue()) == "Image format ICO is not accepted; use one of JPEG, PNG, WEBP, GIF, BMP, TIFF."


def test_oversized_bytes_are_refused_with_both_sizes():
    # given
    data = b"\xff\xd8" + b"\x00" * (11 * MB)
    # then
    assert reason_for(data) == "The file is 11.0 MB; the limit is 10 MB."


def test_oversized_file_object_is_refused_without_reading_it_all():
    # given
    stream = io.BytesIO(b"\x00" * (DEFAULT_MAX_BYTES + 5 * MB))
    # when
    reason = reason_for(stream)
    # then
    assert reason == "The file is larger than the 10 MB limit."
    assert stream.tell() == DEFAULT_MAX_BYTES + 1


def test_oversized_file_on_disk_is_refused(tmp_path):
    # given
    path = tmp_path / "huge.jpg"
    path.write_bytes(b"\x00" * (12 * MB))
    # then
    assert reason_for(path) == "The file is 12 MB; the limit is 10 MB."


def test_small_byte_limits_are_shown_in_kilobytes():
    # then
    assert reason_for(b"\x00" * 5000, max_bytes=2048) == "The file is 4.9 KB; the limit is 2 KB."


def test_missing_file_is_refused_by_name(tmp_path):
    # then
    assert reason_for(tmp_path / "gone.jpg") == "Photo file 'gone.jpg' does not exist."


def test_a_file_object_is_read_from_the_start():
    # given: a stream someone already read
    stream = io.BytesIO(photo_bytes(size=(20, 30)))
    stream.read()
    # when
    decoded = open_image(stream)
    # then
    assert (decoded.width, decoded.height) == (20, 30)


def test_a_long_strip_is_refused_by_its_longest_side_before_decoding():
    # given: 8 x 60,000 px, 480,000 pixels (far under the pixel limit) in about a kilobyte
    strip = png_with_declared_size(8, 60_000)
    # then
    assert reason_for(strip) == "The image is 8x60000 px; its sides may be at most 12,000 px. Send a photo of the product, scaled down."


def test_a_photo_that_would_take_too_much_memory_to_decode_is_refused():
    # given: a 400x400 PNG is 640,000 bytes of pixels once decoded (4 a pixel for RGB)
    data = photo_bytes(size=(400, 400), fmt="PNG")
    # then
    assert reason_for(data, max_decode_bytes=500_000) == (
        "The image is 400x400 px and would take 625 KB to open; the limit is 488.3 KB. Send a smaller copy, or save it as a JPEG."
    )


def test_fit_decodes_a_large_jpeg_at_a_reduced_scale_within_the_memory_limit():
    # given: 2000x1600 px take 12.8 MB decoded in full; 4 MB are allowed
    data = photo_bytes(size=(2000, 1600), seed=3)
    assert "would take 12.2 MB to open; the limit is 4 MB" in reason_for(data, max_decode_bytes=4 * MB)
    # when: only 200 px are needed, the JPEG is decoded at 1/8 scale (250x200 px, 0.2 MB)
    decoded = open_image(data, max_decode_bytes=4 * MB, fit=200)
    # then: the photo's own size is reported, the pixels are the small copy
    assert (decoded.width, decoded.height) == (2000, 1600)
    assert decoded.image.size == (200, 160) and decoded.image.mode == "RGB"


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"), ("GIF", "P"), ("PNG", "L"), ("WEBP", "RGB")])
def test_fit_shrinks_every_format_to_rgb_with_the_aspect_kept(fmt, mode):
    # given
    buf = io.BytesIO()
    Image.new(mode, (900, 300), 100 if mode in ("P", "L") else (10, 120, 200) if mode == "RGB" else (10, 120, 200, 128)).save(buf, format=fmt)
    # when
    decoded = open_image(buf.getvalue(), fit=150)
    # then
    assert decoded.image.size == (150, 50) and decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (900, 300)


def test_fit_applies_the_exif_rotation_and_reports_the_upright_size():
    # given: a landscape 400x200 photo whose EXIF says "rotate 90 degrees clockwise", left half red
    image = Image.new("RGB", (400, 200), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 200, 200))
    exif = image.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    # when
    decoded = open_image(buf.getvalue(), fit=100)
    # then: portrait, red on top, no EXIF left
    assert (decoded.width, decoded.height) == (200, 400) and decoded.image.size == (50, 100)
    pixels = np.asarray(decoded.image)
    assert pixels[10, 25, 0] > 200 and pixels[90, 25, 2] > 200
    assert 0x0112 not in decoded.image.getexif()


@pytest.mark.parametrize("size", [(8, 60), (300, 301), (1000, 223), (225, 2000), (640, 480), (17, 999), (224, 224)])
def test_the_encoder_crop_matches_torchvision_resize_then_centre_crop(size):
    # given: torchvision's Resize(224) + CenterCrop(224), which resizes the whole photo first
    from torchvision import transforms

    from mlmodels.image import ResizeCentreCrop

    reference = transforms.Compose([transforms.Resize(224, interpolation=transforms.InterpolationMode.BILINEAR), transforms.CenterCrop(224)])
    photo = Image.fromarray(np.random.default_rng(sum(size)).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    # when
    ours = np.asarray(ResizeCentreCrop(224)(photo), dtype=int)
    # then: the same pixels, at most one level of 255 apart (floating-point rounding of the box)
    assert ours.shape == (224, 224, 3)
    assert np.abs(ours - np.asarray(reference(photo), dtype=int)).max() <= 1
