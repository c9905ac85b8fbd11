"""Catalog cleaning (shop.cleaning): each rule on the text it is for, on real Flipkart rows, and
the brand key that makes spellings of one brand one brand. Real data from CATALOG_DIR, read-only."""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings

from shop.brands import brand_for_name, brands_merge
from shop.cleaning import CleaningReport, brand_key, clean_text, collapse_repeats, product_values_clean
from shop.importers import read_catalog
from shop.models import Brand, IndexState, Product


def clean(**values):
    return product_values_clean(values)


# -- the rules, one by one --------------------------------------------------------------------------
@pytest.mark.parametrize("placeholder", ["NA", "na", "N/A", "n/a", " - ", "", "null", "NULL", "  NA  ", "NA cm", "NA L", "n/a GB"])
def test_placeholder_specification_values_are_dropped_and_counted(placeholder):
    # when
    values, report = clean(specifications={"Material": "Cotton", "Pattern": placeholder})
    # then
    assert values["specifications"] == {"Material": "Cotton"}
    assert report.counts["placeholders"] == 1


def test_values_that_only_look_like_placeholders_are_kept():
    # when
    values, report = clean(specifications={"Brand": "NAFA", "Size": "N/A cm wide", "Dash": "--x", "Count": "0", "Model": "NA 5"})
    # then
    assert values["specifications"] == {"Brand": "NAFA", "Size": "N/A cm wide", "Dash": "--x", "Count": "0", "Model": "NA 5"}
    assert not report


def test_a_placeholder_brand_means_no_brand():
    values, report = clean(brand="N/A")
    assert values["brand"] == "" and report.counts["placeholders"] == 1


def test_a_description_written_twice_keeps_one_copy():
    # given: the shape of 179 Flipkart descriptions (title, price, then the same paragraph twice)
    text = (
        "Escort Analog Watch - For Men\r\n    Price: Rs. 1,829\r\n\t\t\t\t\r\n\t\t\t"
        "If you have it, flaunt it! The casing adds more appeal to this timepiece.\r\n"
        "If you have it, flaunt it! The casing adds more appeal to this timepiece."
    )
    # when
    values, report = clean(description=text)
    # then
    assert values["description"] == (
        "Escort Analog Watch - For Men\nPrice: Rs. 1,829\n\nIf you have it, flaunt it! The casing adds more appeal to this timepiece."
    )
    assert report.counts["repeats"] == 1 and report.counts["whitespace"] == 1


def test_a_long_sentence_repeated_inside_a_paragraph_is_collapsed_but_short_ones_stay():
    # given
    text = "Soft cotton towel for daily use. Machine wash. Dries fast. Soft cotton towel for daily use. Machine wash."
    # when
    out = collapse_repeats(text, report := CleaningReport())
    # then: the four-word sentence goes, the two-word one is a legitimate repeat
    assert out == "Soft cotton towel for daily use. Machine wash. Dries fast. Machine wash."
    assert report.counts["repeats"] == 1


def test_mojibake_is_repaired_and_curly_quotes_stay_curly():
    # given: UTF-8 read as Windows-1252, and a correct curly apostrophe
    report = CleaningReport()
    # when
    out = clean_text("CafÃ© crÃ¨me mug — Shopizone’s pick", report)
    # then
    assert out == "Café crème mug — Shopizone’s pick"
    assert report.counts == Counter({"encoding": 1})


def test_lost_characters_are_removed():
    # given: a real Flipkart title whose accented letter was lost before the catalog got it
    values, report = clean(title="BeYOUtiful Copper Repouss\ufffd\ufffd - Man With Dhol Showpiece  -  36 cm")
    # then
    assert values["title"] == "BeYOUtiful Copper Repouss - Man With Dhol Showpiece - 36 cm"
    assert report.rules == ["encoding", "whitespace"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Tom &amp; Jerry", "Tom & Jerry"), ("5&nbsp;cm", "5 cm"), ("AT&amp;amp;T", "AT&T"), ("&quot;Best&quot; mug", '"Best" mug'),
     ("R&D and &copy without a semicolon", "R&D and &copy without a semicolon")],
)
def test_html_entities_are_unescaped(raw, expected):
    report = CleaningReport()
    assert clean_text(raw, report) == expected
    assert report.counts["html_entities"] == (raw != expected)


def test_titles_become_one_line_and_descriptions_keep_their_paragraphs():
    # when
    values, _ = clean(title="  Cotton\n Towel\t (Pack of 2) ", description="First line\r\n\r\n\r\n\r\nSecond   line\r\n")
    # then
    assert values["title"] == "Cotton Towel (Pack of 2)"
    assert values["description"] == "First line\n\nSecond line"


def test_non_text_specification_values_are_kept_as_they_are():
    values, report = clean(specifications={"Pieces": 4, "Washable": True, "Notes": None})
    assert values["specifications"] == {"Pieces": 4, "Washable": True}
    assert report.counts["placeholders"] == 1


def test_specification_names_that_clean_to_the_same_name_keep_the_first_value():
    values, report = clean(specifications={"Colour": "White", "Colour ": "Blue"})
    assert values["specifications"] == {"Colour": "White"}
    assert report.counts["repeats"] == 1


def test_clean_text_is_not_changed_and_reports_nothing():
    values, report = clean(title="Cotton Towel", description="One.\n\nTwo.", brand="Softline", specifications={"Material": "Cotton"})
    assert values == {"title": "Cotton Towel", "description": "One.\n\nTwo.", "brand": "Softline", "specifications": {"Material": "Cotton"}}
    assert not report and report.describe() == ""


# -- the real Flipkart catalog -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flipkart_rows():
    folder = Path(settings.CATALOG_DIR) / "flipkart"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here; set CATALOG_DIR to the shared data folder")
    return list(read_catalog("flipkart", folder))


def _values(row):
    return {"title": row.title, "description": row.description, "brand": row.brand, "specifications": row.specifications}


def test_every_flipkart_row_cleans_once_and_for_all(flipkart_rows):
    # when: each row is cleaned, then its clean values cleaned again
    again = [product_values_clean(product_values_clean(_values(row))[0]) for row in flipkart_rows]
    # then: the second pass changes nothing
    assert [report.counts for _, report in again if report] == []


def test_flipkart_rows_touched_by_each_rule(flipkart_rows):
    # when
    touched = Counter(rule for row in flipkart_rows for rule in product_values_clean(_values(row))[1].rules)
    # then: the counts the README reports for the 1,050 rows
    assert touched == Counter({"whitespace": 446, "repeats": 179, "placeholders": 32, "encoding": 4})


def test_no_cleaned_flipkart_text_shows_junk(flipkart_rows):
    # when
    cleaned = [product_values_clean(_values(row))[0] for row in flipkart_rows]
    # then
    assert not [v["title"] for v in cleaned if "\ufffd" in v["title"] + v["description"]]
    assert not [v["specifications"] for v in cleaned if any(str(x).upper().split()[:1] in (["NA"], ["N/A"]) for x in v["specifications"].values())]


# -- brands ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b"),
    [("FS Mini Klub", "Fs Mini Klub"), ("Surface 180", "Surface180"), ("I Ball", "iBall"), ("L Oreal", "L'Oréal"), ("ocean", "Ocean")],
)
def test_spellings_of_one_brand_share_a_key(a, b):
    assert brand_key(a) == brand_key(b) != ""


def test_different_brands_keep_different_keys():
    assert len({brand_key(n) for n in ("Nike", "Nikon", "Mini Klub", "FS Mini Klub", "हिंदी", "हंदी")}) == 6


@pytest.mark.django_db
def test_a_brand_spelt_differently_is_matched_to_the_existing_one_and_counted():
    # given
    existing = Brand.objects.create(name="FS Mini Klub")
    report = CleaningReport()
    # when
    found = brand_for_name("Fs Mini Klub", report)
    # then
    assert found == existing and Brand.objects.filter(key="fsminiklub").count() == 1
    assert report.counts["brand"] == 1 and report.examples["brand"] == ["Fs Mini Klub → FS Mini Klub"]


@pytest.mark.django_db
def test_merging_brands_moves_their_products_and_queues_them_for_indexing(django_capture_on_commit_callbacks):
    # given
    keep = Brand.objects.create(name="Mini Klub")
    other = Brand.objects.create(name="MiniKlub Kids")
    moved = [Product.objects.create(title=f"Romper {n}", brand=other) for n in range(3)]
    staying = Product.objects.create(title="Bib", brand=keep)
    Product.objects.update(index_state=IndexState.INDEXED)
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        ids = brands_merge(canonical=keep, others=[keep, other])
    # then
    assert sorted(ids) == sorted(p.pk for p in moved)
    assert not Brand.objects.filter(pk=other.pk).exists()
    assert set(Product.objects.filter(brand=keep).values_list("title", "index_state")) == {
        ("Romper 0", "pending"), ("Romper 1", "pending"), ("Romper 2", "pending"), ("Bib", "indexed"),
    }
    assert staying.pk not in ids and len(callbacks) >= 1


@pytest.mark.django_db
def test_the_migration_merges_existing_duplicate_brands_into_the_one_with_most_products():
    # given: brands saved before keys existed (their keys are placeholders, as after the column was added)
    Brand.objects.bulk_create([Brand(name="FS Mini Klub", slug="fs-mini-klub", key="old-1"),
                               Brand(name="Fs Mini Klub", slug="fs-mini-klub-2", key="old-2")])
    big, small = Brand.objects.get(name="FS Mini Klub"), Brand.objects.get(name="Fs Mini Klub")
    for n in range(5):
        Product.objects.create(title=f"Dress {n}", brand=big)
    for n in range(3):
        Product.objects.create(title=f"Top {n}", brand=small)
    Product.objects.update(index_state=IndexState.INDEXED)
    migration = importlib.import_module("shop.migrations.0003_brand_key_product_source_row")
    # when
    migration.merge_duplicate_brands(apps, None)
    # then
    merged = Brand.objects.get(key="fsminiklub")
    assert merged.name == "FS Mini Klub" and not Brand.objects.filter(name="Fs Mini Klub").exists()
    assert merged.products.count() == 8
    assert sorted(Product.objects.filter(index_state="pending").values_list("title", flat=True)) == ["Top 0", "Top 1", "Top 2"]
