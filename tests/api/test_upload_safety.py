"""Photos uploaded through the API: type from the content, size and pixel limits, EXIF applied
and stripped, re-encoded to JPEG, stored under a random name."""

from __future__ import annotations

import io
import re

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from shop.models import ProductImage
from tests.api.images import photo_bytes

STORED_NAME = re.compile(r"^products/[0-9a-f]{2}/[0-9a-f]{32}\.jpg$")


@pytest.fixture
def upload(world):
    client = world.client("merchant_a")

    def send(data: bytes, name: str = "photo.jpg", **extra):
        return client.post(
            f"/api/products/{world.product_a.pk}/images/", {"image": ContentFile(data, name=name), **extra}, format="multipart"
        )

    return send


def _stored(response) -> Image.Image:
    image = ProductImage.objects.get(pk=response.json()["id"])
    with image.image.open("rb") as fh:
        return Image.open(io.BytesIO(fh.read()))


def test_png_named_jpg_is_read_by_content_and_stored_as_jpeg(upload):
    response = upload(photo_bytes("PNG"), name="holiday.jpg")

    assert response.status_code == 201
    assert _stored(response).format == "JPEG"
    assert response.json()["source_name"] == "holiday.jpg"


def test_jpeg_named_png_is_accepted(upload):
    assert upload(photo_bytes("JPEG"), name="scan.png").status_code == 201


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"<html><script>alert(1)</script></html>", "photo.jpg", "not a photo we can open"),
        (b"%PDF-1.7\n1 0 obj<<>>endobj", "photo.jpg", "not a photo we can open"),
        (b"", "photo.jpg", "empty"),
        (photo_bytes()[:200], "photo.jpg", "truncated or corrupt"),
        (photo_bytes(size=(4, 4)), "tiny.jpg", "too small"),
    ],
)
def test_unusable_files_are_refused_and_nothing_is_stored(world, upload, data, name, reason):
    response = upload(data, name=name)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "image" and error["code"] == "image_rejected" and reason in error["message"]
    assert not ProductImage.objects.filter(product=world.product_a).exists()


def test_file_over_the_size_limit_is_refused(world, upload, settings):
    settings.MAX_IMAGE_BYTES = 20_000
    noisy = Image.effect_noise((400, 400), 100).convert("RGB")
    buf = io.BytesIO()
    noisy.save(buf, format="PNG")
    assert len(buf.getvalue()) > 20_000

    response = upload(buf.getvalue())

    assert response.status_code == 400 and "the limit is" in response.json()["error"]["message"]
    assert not ProductImage.objects.filter(product=world.product_a).exists()


def test_decompression_bomb_is_refused_before_decoding(world, upload):
    # 10,000 x 10,000 one-bit pixels: a few kilobytes of PNG, 100 megapixels once decoded.
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, format="PNG")
    assert len(buf.getvalue()) < 100_000

    response = upload(buf.getvalue(), name="bomb.png")

    assert response.status_code == 400
    assert "megapixels" in response.json()["error"]["message"]
    assert not ProductImage.objects.filter(product=world.product_a).exists()


def test_exif_orientation_is_applied_and_metadata_stripped(upload):
    # a 64x48 photo whose EXIF says "rotate 90 degrees clockwise to display" (orientation 6)
    data = photo_bytes(size=(64, 48), exif_orientation=6, exif_text="Secret Camera Owner")
    assert b"Secret Camera Owner" in data

    response = upload(data)

    stored = _stored(response)
    assert response.status_code == 201
    assert stored.size == (48, 64)  # upright
    assert not stored.getexif() and "exif" not in stored.info
    image = ProductImage.objects.get(pk=response.json()["id"])
    with image.image.open("rb") as fh:
        assert b"Secret Camera Owner" not in fh.read()


def test_storage_path_never_comes_from_the_upload_name(world, upload):
    response = upload(photo_bytes(), name="../../../etc/passwd.jpg")

    assert response.status_code == 201
    stored = ProductImage.objects.get(pk=response.json()["id"])
    assert STORED_NAME.match(stored.image.name), stored.image.name
    assert "passwd" not in stored.image.name and ".." not in response.json()["source_name"]


def test_first_photo_is_primary_and_make_primary_moves_it(world, upload):
    first = upload(photo_bytes()).json()
    second = upload(photo_bytes(color=(0, 200, 0)), make_primary="true").json()

    assert first["is_primary"] is True and second["is_primary"] is True
    assert ProductImage.objects.filter(product=world.product_a, is_primary=True).get().pk == second["id"]


def test_upload_must_be_multipart(world):
    response = world.client("merchant_a").post(f"/api/products/{world.product_a.pk}/images/", {"image": "aGVsbG8="}, format="json")

    assert response.status_code == 415


def test_missing_image_field_is_400(world):
    response = world.client("merchant_a").post(f"/api/products/{world.product_a.pk}/images/", {"alt_text": "x"}, format="multipart")

    assert response.status_code == 400 and response.json()["error"]["field"] == "image"
