"""Catalog import: a hand-made Flipkart-format folder with every kind of bad row, and a few real
rows of the fashion and grocery catalogs (read-only, from CATALOG_DIR)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from PIL import Image

from shop.importers import read_catalog
from shop.models import Brand, Category, Product, ProductImage
from shop.services import catalog_import
from tests.factories import photo_bytes

pytestmark = pytest.mark.django_db

FLIPKART_COLUMNS = [
    "uniq_id", "crawl_timestamp", "product_url", "product_name", "product_category_tree", "pid", "retail_price",
    "discounted_price", "image", "is_FK_Advantage_product", "description", "product_rating", "overall_rating",
    "brand", "product_specifications",
]


def flipkart_row(uniq_id: str, name: str, tree: str, *, price: str = "499.0", retail: str = "999.0", image: str = "",
                 brand: str = "", rating: str = "No rating available", specs: str = "", description: str = "") -> dict:
    return {
        "uniq_id": uniq_id, "crawl_timestamp": "2016-04-30 03:22:56 +0000", "product_url": f"http://example.com/{uniq_id}",
        "product_name": name, "product_category_tree": f'["{tree}"]', "pid": uniq_id.upper(), "retail_price": retail,
        "discounted_price": price, "image": image, "is_FK_Advantage_product": "False", "description": description,
        "product_rating": rating, "overall_rating": rating, "brand": brand, "product_specifications": specs,
    }


def write_flipkart(folder: Path, rows: list[dict]) -> None:
    with (folder / "products.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FLIPKART_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(autouse=True)
def empty_catalog(db) -> None:
    """These tests count every product, brand and category: start from an empty catalog whatever a
    session fixture (``indexed_catalog``) loaded before; the test's transaction restores it after."""
    Product.objects.all().delete()
    while Category.objects.exists():  # leaves first: a parent is protected while it has children
        Category.objects.filter(children__isnull=True).delete()
    Brand.objects.all().delete()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def flipkart_folder(tmp_path) -> Path:
    """Two good products and one row of each kind of problem."""
    folder = tmp_path / "flipkart"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "towel.jpg").write_bytes(photo_bytes((240, 240, 230), size=(120, 90)))
    (folder / "images" / "watch.png").write_bytes(photo_bytes((20, 20, 20), size=(64, 64), fmt="PNG"))
    (folder / "images" / "broken.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    (folder / "images" / "noprice.jpg").write_bytes(photo_bytes(size=(32, 32)))
    write_flipkart(folder, [
        flipkart_row("towel-1", "Softline Cotton Bath Towel", "Home Furnishing >> Bath Linen >> Towels >> Softline Towels >> Softline Cotton Ba...",
                     price="399.0", retail="799.0", image="towel.jpg", brand="Softline", rating="4.2",
                     specs='{"product_specification"=>[{"key"=>"Material", "value"=>"Cotton"}, {"key"=>"Color", "value"=>"White"}]}',
                     description="A soft cotton towel."),
        flipkart_row("watch-1", "Titan Analog Watch", "Watches >> Wrist Watches", price="", retail="2999.0", image="watch.png",
                     specs='{"product_specification"=>[{"key"=>"Brand", "value"=>"Titan"}]}'),
        flipkart_row("gone-1", "Curtain Without Photo", "Home Furnishing >> Curtains", image="missing.jpg"),
        flipkart_row("noprice-1", "Mug Without Price", "Kitchen & Dining >> Mugs", price="", retail="", image="noprice.jpg"),
        flipkart_row("broken-1", "Lamp With Corrupt Photo", "Home Decor >> Lamps", image="broken.jpg"),
        flipkart_row("towel-1", "Softline Cotton Bath Towel (again)", "Home Furnishing >> Bath Linen", image="towel.jpg"),
        flipkart_row("", "Row Without Id", "Home Decor", image="towel.jpg"),
    ])
    return folder


def test_import_creates_the_good_products_and_counts_each_skip_reason(flipkart_folder):
    # when
    summary = catalog_import(read_catalog("flipkart", flipkart_folder))
    # then
    assert (summary.created, summary.updated, summary.unchanged) == (2, 0, 0)
    assert dict(summary.skipped) == {
        "missing photo": 1,
        "empty price": 1,
        "unusable photo (This file is not a photo we can open. Try a JPEG or PNG.)": 1,
        "duplicate id in the file": 1,
        "no id": 1,
    }
    assert summary.skipped_examples["missing photo"] == ["gone-1"]
    assert summary.skipped_examples["duplicate id in the file"] == ["towel-1"]
    assert summary.skipped_examples["no id"] == ["(no id)"]
    assert sorted(Product.objects.values_list("external_id", flat=True)) == ["towel-1", "watch-1"]
    assert sorted(summary.product_ids) == sorted(Product.objects.values_list("pk", flat=True))


def test_imported_product_keeps_every_field_of_its_row(flipkart_folder):
    # when
    catalog_import(read_catalog("flipkart", flipkart_folder))
    # then
    towel = Product.objects.select_related("brand", "category").get(external_id="towel-1")
    assert towel.title == "Softline Cotton Bath Towel"
    assert towel.brand.name == "Softline"
    assert towel.category.path == "Home Furnishing > Bath Linen > Towels > Softline Towels"
    assert (towel.price, towel.list_price, towel.currency) == (Decimal("399.00"), Decimal("799.00"), "INR")
    assert towel.rating == 4.2
    assert towel.specifications == {"Material": "Cotton", "Color": "White"}
    assert towel.description == "A soft cotton towel."
    assert towel.index_state == "pending"


def test_empty_selling_price_falls_back_to_the_list_price_and_brand_to_the_specifications(flipkart_folder):
    # when
    catalog_import(read_catalog("flipkart", flipkart_folder))
    # then
    watch = Product.objects.get(external_id="watch-1")
    assert watch.price == Decimal("2999.00")
    assert watch.brand.name == "Titan"
    assert watch.rating is None


def test_a_row_without_a_brand_takes_it_from_its_branded_category_leaf(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "p.jpg").write_bytes(photo_bytes(size=(32, 32)))
    write_flipkart(tmp_path, [
        flipkart_row("w-1", "Maserati Time R8851116001 Analog Watch  - For Boys", "Watches >> Wrist Watches >> Maserati Time Wrist Watches", image="p.jpg"),
        flipkart_row("w-2", "Analog Watch  - For Boys", "Watches >> Wrist Watches >> Maserati Time Wrist Watches", image="p.jpg"),
        flipkart_row("w-3", "Sonata 7924PP01 Analog Watch", "Watches >> Wrist Watches >> Sonata Wrist Watches", brand="Titan", image="p.jpg"),
        flipkart_row("d-1", "SANTOSH ROYAL FASHION Cotton Embroidered Diwan Set",
                     "Home Furnishing >> Diwan Sets >> SANTOSH ROYAL FASHION Cotton Embroidered Diwan", image="p.jpg"),
    ])

    catalog_import(read_catalog("flipkart", tmp_path))

    brands = {p.external_id: p.brand.name if p.brand else None for p in Product.objects.select_related("brand")}
    # the leaf names the brand only when it is "<brand> <parent>" and the title starts with <brand>;
    # a brand column wins over the leaf
    assert brands == {"w-1": "Maserati Time", "w-2": None, "w-3": "Titan", "d-1": None}


def test_category_tree_is_created_once_with_every_ancestor(flipkart_folder):
    # when
    catalog_import(read_catalog("flipkart", flipkart_folder))
    catalog_import(read_catalog("flipkart", flipkart_folder))
    # then
    assert sorted(Category.objects.values_list("path", flat=True)) == [
        "Home Furnishing", "Home Furnishing > Bath Linen", "Home Furnishing > Bath Linen > Towels",
        "Home Furnishing > Bath Linen > Towels > Softline Towels", "Watches", "Watches > Wrist Watches",
    ]


def test_photos_are_copied_into_media_storage(flipkart_folder, media_root):
    # when
    catalog_import(read_catalog("flipkart", flipkart_folder))
    # then: one primary photo per product, inside MEDIA_ROOT, never the source path
    towel_photo = ProductImage.objects.get(product__external_id="towel-1")
    watch_photo = ProductImage.objects.get(product__external_id="watch-1")
    for photo in (towel_photo, watch_photo):
        stored = Path(photo.image.path)
        assert stored.is_file()
        assert stored.is_relative_to(media_root)
        assert photo.is_primary
    assert Path(towel_photo.image.path).read_bytes() == (flipkart_folder / "images" / "towel.jpg").read_bytes()
    assert (towel_photo.source_name, towel_photo.width, towel_photo.height) == ("towel.jpg", 120, 90)
    # the PNG is stored as a JPEG
    with Image.open(watch_photo.image.path) as stored_png:
        assert (stored_png.format, stored_png.size) == ("JPEG", (64, 64))


def test_photo_dimensions_are_stored_so_loading_a_row_never_reads_the_photo(flipkart_folder, media_root):
    # when
    catalog_import(read_catalog("flipkart", flipkart_folder))
    # then: width and height are in the database, not recomputed from the file on every load
    assert ProductImage.objects.filter(product__external_id="towel-1").values_list("width", "height").get() == (120, 90)
    photo = ProductImage.objects.get(product__external_id="towel-1")
    Path(photo.image.path).unlink()  # a load that parsed the photo would raise FileNotFoundError now
    assert (ProductImage.objects.get(pk=photo.pk).width, Product.objects.get(external_id="towel-1").primary_image.height) == (120, 90)


def test_second_import_of_the_same_folder_changes_nothing(flipkart_folder):
    # given
    first = catalog_import(read_catalog("flipkart", flipkart_folder))
    photos = set(ProductImage.objects.values_list("image", flat=True))
    # when
    second = catalog_import(read_catalog("flipkart", flipkart_folder))
    # then
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)
    assert second.skipped == first.skipped
    assert Product.objects.count() == 2
    assert set(ProductImage.objects.values_list("image", flat=True)) == photos
    assert sorted(second.product_ids) == sorted(first.product_ids)


def test_reimport_updates_a_changed_row_in_place(flipkart_folder):
    # given
    catalog_import(read_catalog("flipkart", flipkart_folder))
    towel_pk = Product.objects.get(external_id="towel-1").pk
    rows = list(csv.DictReader((flipkart_folder / "products.csv").open(encoding="utf-8")))
    rows[0]["discounted_price"] = "349.0"
    write_flipkart(flipkart_folder, rows)
    # when
    summary = catalog_import(read_catalog("flipkart", flipkart_folder))
    # then
    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 1)
    towel = Product.objects.get(external_id="towel-1")
    assert (towel.pk, towel.price) == (towel_pk, Decimal("349.00"))


def test_reimport_with_a_new_photo_replaces_the_old_one(flipkart_folder):
    # given
    catalog_import(read_catalog("flipkart", flipkart_folder))
    (flipkart_folder / "images" / "towel-v2.jpg").write_bytes(photo_bytes((10, 200, 10), size=(80, 80)))
    rows = list(csv.DictReader((flipkart_folder / "products.csv").open(encoding="utf-8")))
    rows[0]["image"] = "towel-v2.jpg"
    write_flipkart(flipkart_folder, rows)
    # when
    summary = catalog_import(read_catalog("flipkart", flipkart_folder))
    # then
    assert summary.updated == 1
    photos = ProductImage.objects.filter(product__external_id="towel-1")
    assert [(p.source_name, p.is_primary) for p in photos] == [("towel-v2.jpg", True)]


def test_import_command_prints_the_summary(flipkart_folder):
    # given
    out = io.StringIO()
    # when
    call_command("import_catalog", "flipkart", str(flipkart_folder), "--no-index", stdout=out)
    # then
    text = out.getvalue()
    assert "created" in text and "missing photo: e.g. gone-1" in text and "empty price: e.g. noprice-1" in text
    assert Product.objects.count() == 2


def test_import_command_names_the_missing_products_csv(tmp_path):
    # given
    folder = tmp_path / "empty-catalog"
    folder.mkdir()
    # when / then
    with pytest.raises(CommandError, match=f"Expected the file {folder / 'products.csv'}, which does not exist"):
        call_command("import_catalog", "flipkart", str(folder), "--no-index", stdout=io.StringIO())


def test_import_command_names_a_missing_folder(tmp_path):
    # when / then
    with pytest.raises(CommandError, match="Catalog folder .*nowhere does not exist"):
        call_command("import_catalog", "flipkart", str(tmp_path / "nowhere"), stdout=io.StringIO())


def test_unknown_format_is_refused_with_the_valid_ones(tmp_path):
    # when / then
    with pytest.raises(ValueError, match="Unknown catalog format 'amazon'; valid formats: flipkart, fashion, grocery"):
        read_catalog("amazon", tmp_path)


# -- the other formats, on real rows --------------------------------------------------------------------
def catalog_dir(name: str) -> Path:
    folder = Path(settings.CATALOG_DIR) / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here; set CATALOG_DIR to the shared data folder")
    return folder


def test_fashion_reader_maps_ids_titles_categories_and_photos():
    # when
    rows = {r.external_id: r for r in list(read_catalog("fashion", catalog_dir("fashion")))[:5]}
    # then: the first row of styles.csv
    jersey = rows["1164"]
    assert jersey.title == "Nike Men Blue T20 Indian Cricket Jersey"
    assert jersey.category_path == ["Apparel", "Topwear", "Tshirts"]
    assert jersey.description == "Men Tshirts Blue Sports"
    assert jersey.specifications["season"] == "Winter"
    assert jersey.image_path.is_file() and jersey.skip_reason == ""
    assert jersey.price is None


def test_grocery_reader_uses_the_class_name_as_id_and_reads_the_description():
    # when
    rows = {r.external_id: r for r in read_catalog("grocery", catalog_dir("grocery"))}
    # then
    apple = rows["Golden-Delicious"]
    assert apple.title == "Golden Delicious Apple"
    assert apple.category_path == ["Fruit", "Apple"]
    assert apple.specifications == {"class_id": "0", "coarse_class": "Apple"}
    assert len(apple.description) > 50
    assert apple.image_path.is_file() and apple.skip_reason == ""
    assert len(rows) == 81


def test_every_real_flipkart_wrist_watch_has_a_brand():
    rows = [r for r in read_catalog("flipkart", catalog_dir("flipkart")) if r.category_path[:2] == ["Watches", "Wrist Watches"]]

    assert len(rows) > 100
    assert [r.title for r in rows if not r.brand] == []
    assert sum(1 for r in rows if not r.source.get("brand", "").strip()) > 50  # most of them had no brand column


def test_real_grocery_rows_import_with_their_photos(media_root):
    # given
    rows = list(read_catalog("grocery", catalog_dir("grocery")))[:3]
    # when
    summary = catalog_import(rows)
    # then
    assert summary.created == 3 and not summary.skipped
    for product in Product.objects.prefetch_related("images"):
        assert Path(product.primary_image.image.path).is_relative_to(media_root)
        assert product.primary_image.width > 0


# -- cleaning at import ----------------------------------------------------------------------------------
@pytest.fixture
def messy_folder(tmp_path) -> Path:
    """Rows with the kinds of junk the Flipkart catalog has: NA specifications, a description written
    twice, a lost character, two spellings of one brand."""
    folder = tmp_path / "messy"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.jpg").write_bytes(photo_bytes((240, 240, 230), size=(40, 40)))
    paragraph = "Soft cotton frock for daily wear. Easy to wash and quick to dry."
    write_flipkart(folder, [
        flipkart_row("frock-1", "FS Mini Klub Girls  Frock", "Baby Care >> Clothes", image="a.jpg", brand="FS Mini Klub",
                     specs='{"product_specification"=>[{"key"=>"Fabric", "value"=>"Cotton"}, {"key"=>"Pattern", "value"=>"NA"}]}',
                     description=f"{paragraph}\r\n{paragraph}"),
        flipkart_row("frock-2", "Fs Mini Klub Baby Girl\ufffds Dress", "Baby Care >> Clothes", image="a.jpg", brand="Fs Mini Klub",
                     description="Tom &amp; Jerry print."),
    ])
    return folder


def test_import_cleans_each_row_and_counts_the_rows_each_rule_touched(messy_folder):
    # when
    summary = catalog_import(read_catalog("flipkart", messy_folder))
    # then
    assert summary.created == 2
    assert dict(summary.cleaned) == {"placeholders": 1, "repeats": 1, "encoding": 1, "html_entities": 1, "whitespace": 1, "brand": 1}
    assert summary.cleaned_examples["brand"] == ["frock-2"]
    frock = Product.objects.get(external_id="frock-1")
    assert frock.title == "FS Mini Klub Girls Frock"
    assert frock.specifications == {"Fabric": "Cotton"}
    assert frock.description == "Soft cotton frock for daily wear. Easy to wash and quick to dry."
    dress = Product.objects.get(external_id="frock-2")
    assert (dress.title, dress.description, dress.brand_id) == ("Fs Mini Klub Baby Girls Dress", "Tom & Jerry print.", frock.brand_id)
    assert list(Brand.objects.values_list("name", flat=True)) == ["FS Mini Klub"]


def test_the_row_as_read_stays_on_the_product(messy_folder):
    # when
    catalog_import(read_catalog("flipkart", messy_folder))
    # then: the source row, uncleaned, column by column
    source = Product.objects.get(external_id="frock-1").source_row
    assert source["product_name"] == "FS Mini Klub Girls  Frock"
    assert source["description"].count("Soft cotton frock") == 2
    assert '"value"=>"NA"' in source["product_specifications"]


def test_reimporting_a_cleaned_catalog_changes_nothing(messy_folder):
    # given
    catalog_import(read_catalog("flipkart", messy_folder))
    # when
    again = catalog_import(read_catalog("flipkart", messy_folder))
    # then: cleaning is counted again (the rows are as dirty as before) but no product changes
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert again.cleaned["repeats"] == 1


def test_a_title_that_cleans_to_nothing_is_skipped_with_the_reason(messy_folder):
    # given
    rows = list(read_catalog("flipkart", messy_folder))
    rows[0].title = "&nbsp;\ufffd"
    # when
    summary = catalog_import(rows)
    # then
    assert summary.skipped == {"empty title": 1} and summary.created == 1


def test_import_command_prints_the_cleaning_counts(messy_folder):
    # given
    out = io.StringIO()
    # when
    call_command("import_catalog", "flipkart", str(messy_folder), "--no-index", stdout=out)
    # then: one line per rule, with the rows it touched
    lines = {line.split("│")[1].strip(): line for line in out.getvalue().splitlines() if line.count("│") > 3}
    for rule in ("placeholders", "repeats", "encoding", "html_entities", "whitespace", "brand"):
        cells = [c.strip() for c in lines[rule].split("│")]
        assert cells[2] == "1", lines[rule]
    assert "Pattern: NA" in out.getvalue() and "Fs Mini Klub → FS Mini Klub" in out.getvalue()
