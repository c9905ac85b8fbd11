"""A merchant's bulk upload (CSV + zip of photos): a result per row, bad rows leave nothing behind."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.base import ContentFile

from shop.models import IndexState, Product, ProductImage
from tests.api.images import photo_bytes

CSV = """external_id,title,description,brand,category,price,list_price,currency,image
acme-10,Acme bath towel,Soft cotton,Acme,Home > Bath > Towels,499,599,INR,towel.jpg
acme-11,Acme hand towel,,Acme,Home > Bath > Towels,-20,,INR,
acme-12,,No title here,Acme,,100,,INR,
acme-13,Acme face towel,,Acme,,a lot,,INR,
acme-14,Acme beach towel,,Acme,,899,,INR,missing.jpg
acme-15,Acme kitchen towel,,Acme,,99,,INR,corrupt.jpg
acme-16,Acme towel set,,Acme,,1299,,INR,photos/set.png
acme-10,Acme bath towel again,,Acme,,1,,INR,
bolt-1,Stolen watch,,Bolt,,1,,INR,
,No id,,Acme,,1,,INR,
"""


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _upload(client, csv_text: str, files: dict[str, bytes] | None = None):
    data = {"csv": ContentFile(csv_text.encode(), name="products.csv")}
    if files is not None:
        data["images"] = ContentFile(_zip(files), name="photos.zip")
    return client.post("/api/products/bulk/", data, format="multipart")


@pytest.fixture
def photos():
    return {"towel.jpg": photo_bytes(), "corrupt.jpg": b"\xff\xd8\xff\xe0 definitely not a jpeg", "photos/set.png": photo_bytes("PNG")}


def test_each_row_gets_its_result(world, photos):
    # when merchant A uploads ten rows, four of them good
    response = _upload(world.client("merchant_a"), CSV, photos)

    # then
    assert response.status_code == 200, response.content
    body = response.json()
    by_row = {r["row"]: r for r in body["rows"]}
    assert (body["created"], body["updated"], body["errors"]) == (2, 0, 8)
    assert [by_row[n]["status"] for n in range(2, 12)] == ["created", "error", "error", "error", "error", "error", "created", "error", "error", "error"]
    assert by_row[3]["field"] == "price" and "greater than or equal to 0" in by_row[3]["error"]
    assert by_row[4]["field"] == "title"
    assert by_row[5]["field"] == "price" and "valid number" in by_row[5]["error"]
    assert by_row[6]["field"] == "image" and "not in the images zip" in by_row[6]["error"]
    assert by_row[7]["field"] == "image" and "corrupt" in by_row[7]["error"] or "not a photo we can open" in by_row[7]["error"]
    assert "already appeared at row 2" in by_row[9]["error"]
    assert "another merchant" in by_row[10]["error"]
    assert by_row[11]["field"] == "external_id"


def test_good_rows_are_written_with_their_photos_and_bad_rows_not_at_all(world, photos):
    _upload(world.client("merchant_a"), CSV, photos)

    towel = Product.objects.get(external_id="acme-10")
    assert (towel.merchant, towel.brand.name, towel.category.path, str(towel.price)) == (world.merchant_a, "Acme", "Home > Bath > Towels", "499.00")
    assert towel.images.get().is_primary and towel.images.get().source_name == "towel.jpg"
    assert Product.objects.get(external_id="acme-16").images.get().image.name.endswith(".jpg")
    assert not Product.objects.filter(external_id__in=["acme-11", "acme-12", "acme-13", "acme-14", "acme-15"]).exists()
    assert Product.objects.get(external_id="bolt-1").title == "Bolt steel wrist watch"
    assert ProductImage.objects.filter(product__merchant=world.merchant_a).count() == 2


def test_a_second_upload_updates_by_external_id(world, photos):
    client = world.client("merchant_a")
    _upload(client, CSV, photos)
    Product.objects.filter(external_id="acme-10").update(index_state=IndexState.INDEXED)

    response = _upload(client, "external_id,title,price\nacme-10,Acme bath towel XL,549\n")

    assert response.json()["rows"] == [
        {"row": 2, "external_id": "acme-10", "status": "updated", "product_id": Product.objects.get(external_id="acme-10").pk, "field": "", "error": ""}
    ]
    towel = Product.objects.get(external_id="acme-10")
    assert (towel.title, str(towel.price), towel.index_state) == ("Acme bath towel XL", "549.00", "pending")
    assert towel.images.count() == 1  # photo kept when the row names none


@pytest.mark.parametrize(
    ("csv_bytes", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not UTF-8"),
        (b"name,cost\nTowel,10\n", "lacks external_id, title"),
        (b"external_id,title,colour\nx,Towel,red\n", "Unknown CSV columns: colour"),
    ],
)
def test_unreadable_csv_is_400_and_writes_nothing(world, csv_bytes, reason):
    before = Product.objects.count()

    response = world.client("merchant_a").post("/api/products/bulk/", {"csv": ContentFile(csv_bytes, name="p.csv")}, format="multipart")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "csv" and reason in response.json()["error"]["message"]
    assert Product.objects.count() == before


def test_a_file_that_is_not_a_zip_is_400(world):
    response = world.client("merchant_a").post(
        "/api/products/bulk/",
        {"csv": ContentFile(b"external_id,title\nx,Towel\n", name="p.csv"), "images": ContentFile(b"PK not really", name="p.zip")},
        format="multipart",
    )

    assert response.status_code == 400 and response.json()["error"]["field"] == "images"
    assert not Product.objects.filter(external_id="x").exists()


def test_zip_bomb_member_is_a_row_error(world, settings):
    settings.MAX_IMAGE_BYTES = 100_000
    bomb = _zip({"big.jpg": b"\0" * 5_000_000})  # 5 MB of zeros, a few KB zipped
    assert len(bomb) < 50_000

    response = world.client("merchant_a").post(
        "/api/products/bulk/",
        {"csv": ContentFile(b"external_id,title,image\nz1,Towel,big.jpg\n", name="p.csv"), "images": ContentFile(bomb, name="p.zip")},
        format="multipart",
    )

    row = response.json()["rows"][0]
    assert row["status"] == "error" and "the limit is" in row["error"]
    assert not Product.objects.filter(external_id="z1").exists()


@pytest.mark.slow
def test_uploaded_products_are_indexed_and_found_by_search(world, photos, django_capture_on_commit_callbacks):
    from search.backends import get_backend

    # when the upload commits, the same index task as every save runs (in-process in tests)
    with django_capture_on_commit_callbacks(execute=True):
        body = _upload(world.client("merchant_a"), CSV, photos).json()
    created = [r["product_id"] for r in body["rows"] if r["status"] == "created"]
    try:
        # then both products are indexed, and a shopper finds them
        assert set(Product.objects.filter(pk__in=created).values_list("index_state", flat=True)) == {"indexed"}
        found = world.client("anonymous").get("/api/search", {"q": "Acme towel set"}).json()["results"]
        assert found[0]["id"] == Product.objects.get(external_id="acme-16").pk
    finally:
        get_backend().delete(created)  # the test database rolls back; keep the shared index in step


def test_a_zip_larger_than_the_photo_limit_is_read(world, settings):
    # given a zip of several photos, larger in all than one photo may be
    settings.MAX_IMAGE_BYTES = 30_000
    files = {f"p{i}.png": photo_bytes("PNG", size=(90, 90), color=(i * 20, 90, 200)) for i in range(6)}
    files["noise.bin"] = bytes(range(256)) * 200  # 51 KB, not compressible much
    csv_text = "external_id,title,image\n" + "".join(f"z{i},Towel {i},p{i}.png\n" for i in range(6))

    response = _upload(world.client("merchant_a"), csv_text, files)

    # then the photo limit applies to each photo, not to the zip
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 6
