"""One request cannot blow up the server's memory with a photo (issue 11, point 1).

A ~1 KB PNG of 8 x 60,000 px sent to ``POST /api/search/image`` grew the server by ~1.5 GB; the
same photo on ``POST /api/products/{id}/images/`` and in a bulk zip answered 500 (JPEG's 65,500 px
limit), and in the bulk case an earlier valid row was saved but neither indexed nor reported.
Here every attack goes to a real gunicorn process with the production settings; its peak RSS
(``VmHWM``, reset before each request) may not grow by more than :data:`MAX_GROWTH_MB`, and
each answer is the one a client can act on: 4xx with the JSON error body, or a bounded success.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from shop.models import IndexState, Product, ProductImage
from tests.attacks.photos import large_photo, small_photo, strip_png
from tests.attacks.servers import peak_reset, vm_kib

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

#: Most a single request may grow the serving process (issue 11's bound).
MAX_GROWTH_MB = 200
STRIP_REFUSED = "The image is 8x60000 px; its sides may be at most 12,000 px."


@pytest.fixture(scope="module")
def server(server_factory):
    """gunicorn, production settings, tasks in-process (no broker), photo-search limits raised for the test."""
    return server_factory(kind="gunicorn", env={"API_THROTTLE_PHOTO_ANON": "1000/minute", "API_THROTTLE_UPLOADS": "1000/hour"})


def measured(server, send):
    """(response, growth of the serving process's peak RSS in MB) for one request."""
    pid = server.serving_pid
    peak_reset(pid)
    before = vm_kib(pid, "VmRSS")
    response = send()
    growth = (vm_kib(pid, "VmHWM") - before) / 1024
    print(f"peak RSS growth {growth:.0f} MB")
    return response, growth


def photo_search(server, data: bytes, name: str = "photo.png"):
    return server.post("/api/search/image", files={"image": (name, data)})


def bulk_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def warm(server, merchant):
    """Both encoders loaded in the server (a photo search and an indexed upload), so growth is the attack's own."""
    headers, product = merchant
    assert photo_search(server, small_photo(), "warm.jpg").status_code == 200
    response = server.post(f"/api/products/{product.pk}/images/", headers=headers, files={"image": ("warm.jpg", small_photo((30, 160, 60)))})
    assert response.status_code == 201, response.text
    return headers, product


def test_a_long_strip_to_photo_search_is_refused_from_its_header(server, warm):
    # when
    response, growth = measured(server, lambda: photo_search(server, strip_png()))
    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("image_rejected", "image") and error["message"].startswith(STRIP_REFUSED)
    assert growth < MAX_GROWTH_MB, f"grew {growth:.0f} MB"


@pytest.mark.parametrize(
    ("fmt", "size"),
    [("PNG", (8, 12_000)), ("JPEG", (6000, 6600)), ("PNG", (5000, 6500))],
    ids=["strip-within-side-limit", "jpeg-40-megapixels", "png-32-megapixels"],
)
def test_photos_within_the_limits_are_searched_with_bounded_memory(server, warm, fmt, size):
    # given: the longest strip allowed, and the largest photos allowed, as JPEG and as PNG
    data = large_photo(fmt, size)
    # when
    response, growth = measured(server, lambda: photo_search(server, data, f"big.{fmt.lower()}"))
    # then
    assert response.status_code == 200, response.text
    assert len(response.json()["photo"]) == 22
    assert growth < MAX_GROWTH_MB, f"grew {growth:.0f} MB"


def test_a_long_strip_uploaded_to_a_product_is_refused_and_nothing_is_stored(server, warm):
    headers, product = warm
    before = ProductImage.objects.filter(product=product).count()
    # when
    response, growth = measured(
        server, lambda: server.post(f"/api/products/{product.pk}/images/", headers=headers, files={"image": ("strip.png", strip_png())})
    )
    # then
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("image_rejected", "image") and error["message"].startswith(STRIP_REFUSED)
    assert ProductImage.objects.filter(product=product).count() == before
    assert growth < MAX_GROWTH_MB, f"grew {growth:.0f} MB"


def test_a_40_megapixel_product_photo_is_stored_at_a_bounded_size(server, warm):
    headers, product = warm
    data = large_photo("JPEG", (6000, 6600))
    # when
    response, growth = measured(
        server, lambda: server.post(f"/api/products/{product.pk}/images/", headers=headers, files={"image": ("big.jpg", data)})
    )
    # then
    assert response.status_code == 201, response.text
    name = ProductImage.objects.filter(pk=response.json()["id"]).values_list("image", flat=True).get()
    assert Image.open(Path(server.env["MEDIA_ROOT"]) / name).size == (1862, 2048)  # in the server's storage
    assert growth < MAX_GROWTH_MB, f"grew {growth:.0f} MB"


def test_bulk_upload_reports_every_row_and_indexes_every_saved_one(server, warm):
    headers, _ = warm
    csv_text = (
        "external_id,title,price,image\n"
        "acme-20,Acme bath towel,499,towel.jpg\n"
        "acme-21,Acme strip towel,299,strip.png\n"
        "acme-22,Acme hand towel,199,\n"
    )
    files = {"csv": ("products.csv", csv_text.encode()), "images": ("photos.zip", bulk_zip({"towel.jpg": small_photo(), "strip.png": strip_png()}))}
    # when
    response, growth = measured(server, lambda: server.post("/api/products/bulk/", headers=headers, files=files))
    # then: one result per row, the strip refused with the reason
    assert response.status_code == 200, response.text
    rows = {r["row"]: r for r in response.json()["rows"]}
    assert [rows[n]["status"] for n in (2, 3, 4)] == ["created", "error", "created"]
    assert rows[3]["field"] == "image" and STRIP_REFUSED in rows[3]["error"]
    assert not Product.objects.filter(external_id="acme-21").exists()
    # and both saved rows were handed to indexing (tasks run in the server process without a broker)
    states = dict(Product.objects.filter(external_id__in=["acme-20", "acme-22"]).values_list("external_id", "index_state"))
    assert states == {"acme-20": IndexState.INDEXED, "acme-22": IndexState.INDEXED}
    assert growth < MAX_GROWTH_MB, f"grew {growth:.0f} MB"
