"""The ``fashion_text`` judged set: the real Myntra catalog as a text-search shop, and its grades."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from search.evaluation.datasets import DATA_FOLDERS, load_dataset
from search.evaluation.fashion_text import QUERY_MIX, Intent, grade, load_fashion_text, phrase, plan_queries

HEADER = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage", "productDisplayName"]


@pytest.fixture(scope="module")
def fashion_folder():
    from django.conf import settings

    return Path(settings.CATALOG_DIR) / DATA_FOLDERS["fashion_text"]


@pytest.fixture(scope="module")
def real_set(fashion_folder):
    return load_dataset("fashion_text", fashion_folder)


def _by_external_id(ds, external_id: str):
    return next(p for p in ds.products if p.external_id == external_id)


# -- the real set ---------------------------------------------------------------------------------------
def test_real_set_has_the_catalog_with_photos_and_500_graded_queries(real_set):
    ds = real_set

    # 7,672 rows less 91 "Free Gifts" and 1 without a title; every product has its title and photo
    assert len(ds.products) == 7580 and ds.index_text and ds.index_photos
    assert all(p.title and p.image_path is not None and p.image_path.is_file() for p in ds.products)
    assert not any(p.attributes["type"] == "Free Gifts" for p in ds.products)
    # the attributes that grade are not in the indexed text
    assert all(not p.description and not p.category_path for p in ds.products)
    assert len(ds.queries) == sum(QUERY_MIX.values()) == 500
    assert len({q.text for q in ds.queries}) == 500
    for q in ds.queries:
        gains = ds.qrels[q.id]
        assert set(gains.values()) <= {1.0, 2.0, 3.0}
        assert sum(g == 3.0 for g in gains.values()) >= 2, q.text


def test_real_set_is_the_same_on_every_load(real_set, fashion_folder):
    again = load_fashion_text(fashion_folder)

    assert [q.text for q in again.queries] == [q.text for q in real_set.queries]
    assert again.qrels == real_set.qrels


def test_many_queries_use_words_their_relevant_titles_lack(real_set):
    # BM25 must not win by construction: a good share of queries name things in shopper words
    plan = plan_queries(real_set.products)
    kinds = Counter(q.intent.kind for q in plan)
    assert kinds == {"type_gender_colour": 225, "type_gender": 150, "type_colour": 75, "type": 50}
    shopper = [q for q in plan if q.shopper_words]
    assert 0.5 < len(shopper) / len(plan) < 0.9
    titles = {p.id: p.title.lower() for p in real_set.products}
    missing_a_word = 0
    for q in plan:
        best = [pid for pid, g in real_set.qrels[q.id].items() if g == 3.0]
        if all(any(w not in titles[pid] for w in q.text.split()) for pid in best):
            missing_a_word += 1
    assert missing_a_word / len(plan) > 0.5


def test_grades_of_real_rows(real_set):
    # "Nike Men Blue T20 Indian Cricket Jersey": Tshirts, Men, Blue
    jersey = _by_external_id(real_set, "1164")
    assert jersey.attributes == {"type": "Tshirts", "gender": "Men", "colour": "Blue"}
    assert grade(Intent("Tshirts", "Men", "Blue"), jersey.attributes) == 3
    assert grade(Intent("Tshirts", "Men"), jersey.attributes) == 3
    assert grade(Intent("Tshirts", "Men", "Black"), jersey.attributes) == 2
    assert grade(Intent("Tshirts", "Women", "Blue"), jersey.attributes) == 1  # the type, another gender
    assert grade(Intent("Tops", "Men"), jersey.attributes) == 1  # a related type
    assert grade(Intent("Tops", "Women"), jersey.attributes) == 0  # related type, wrong gender
    assert grade(Intent("Watches", "Men", "Blue"), jersey.attributes) == 0
    # a unisex backpack suits a man's and a woman's query, not a girl's
    backpack = next(p for p in real_set.products if p.attributes["type"] == "Backpacks" and p.attributes["gender"] == "Unisex")
    colour = backpack.attributes["colour"]
    assert grade(Intent("Backpacks", "Women", colour), backpack.attributes) == 3
    assert grade(Intent("Backpacks", "Men", colour), backpack.attributes) == 3
    assert grade(Intent("Backpacks", "Girls", colour), backpack.attributes) == 1


def test_a_shopper_word_query_judges_the_products_it_means(real_set):
    plan = {q.text: q for q in plan_queries(real_set.products)}
    # "tees" is rarely the catalog's word, yet the perfect products of "black tees for men" are men's black t-shirts
    q = plan["black tees for men"]
    assert q.intent == Intent("Tshirts", "Men", "Black") and q.shopper_words
    best = [p for p in real_set.products if real_set.qrels[q.id].get(p.id) == 3.0]
    assert len(best) >= 10
    assert all(p.attributes["type"] == "Tshirts" and p.attributes["colour"] == "Black" for p in best)
    assert sum("tee" in p.title.lower().split() for p in best) <= len(best) // 10
    assert sum(("t-shirt" in p.title.lower() or "tshirt" in p.title.lower()) for p in best) >= 0.7 * len(best)
    # "wristwatch for her": women's (and unisex) watches, whose titles say watch or dial; no bag is judged at all
    w = plan["wristwatch for her"]
    gains = real_set.qrels[w.id]
    best = [p for p in real_set.products if gains.get(p.id) == 3.0]
    assert len(best) >= 40 and {p.attributes["gender"] for p in best} == {"Women", "Unisex"}
    assert not any("wristwatch" in p.title.lower() for p in best)
    assert sum(("watch" in p.title.lower() or "dial" in p.title.lower()) for p in best) >= 0.9 * len(best)
    assert not any(p.id in gains for p in real_set.products if p.attributes["type"] == "Handbags")


def test_phrasing_is_fixed_per_intent_and_names_the_attributes():
    text, shopper = phrase(Intent("Tshirts", "Men", "Navy Blue"))

    assert phrase(Intent("Tshirts", "Men", "Navy Blue")) == (text, shopper)
    words = text.split()
    assert any(w in words for w in ("tshirts", "t-shirt", "tee", "tees")) or "t shirt" in text
    assert "navy" in words or "dark blue" in text
    assert any(w in text for w in ("men", "gents", "male", "him"))


# -- small folders ----------------------------------------------------------------------------------------
def _catalog(folder: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """``styles.csv`` with (gender, articleType, baseColour, title) rows and a real JPEG for each."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    with (folder / "styles.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i, (gender, kind, colour, title) in enumerate(rows):
            w.writerow([2000 + i, gender, "Apparel", "Topwear", kind, colour, "Summer", 2012, "Casual", title])
            Image.new("RGB", (60, 80), (20 * (i % 12), 90, 200 - 10 * (i % 12))).save(folder / "images" / f"{2000 + i}.jpg")


SMALL = [
    *[("Men", "Tshirts", "Blue", f"Brand{i} Men Blue T-shirt") for i in range(4)],
    *[("Men", "Tshirts", "Black", f"Brand{i} Men Black Polo T-shirt") for i in range(4)],
    *[("Women", "Watches", "Gold", f"Brand{i} Women Gold Dial Watch") for i in range(4)],
    *[("Women", "Handbags", "Brown", f"Brand{i} Women Brown Handbag") for i in range(4)],
    ("Men", "Free Gifts", "Black", "Brand Men Black Watch"),
    ("Men", "Tshirts", "White", ""),
]


def test_small_folder_leaves_out_free_gifts_and_untitled_rows(tmp_path):
    _catalog(tmp_path, SMALL)

    ds = load_fashion_text(tmp_path, mix={"type_gender_colour": 10, "type_gender": 10, "type_colour": 10, "type": 10})

    assert len(ds.products) == 16
    assert "Left out: 1 'Free Gifts' products, 1 with empty title." in ds.notes[0]
    intents = {q.intent for q in plan_queries(ds.products)}
    # types with fewer than MIN_TYPE_PRODUCTS products never become queries
    assert intents == set()


def test_missing_styles_csv_is_a_command_error_naming_it(tmp_path):
    with pytest.raises(CommandError, match=rf"{tmp_path}/styles.csv"):
        call_command("evaluate", "fashion_text", "--data", str(tmp_path))


@pytest.mark.slow
def test_evaluate_fashion_text_reports_bm25_each_knn_and_the_hybrid(tmp_path):
    # 12 t-shirts and 12 watches with real photos encoded by the real models; queries need 10+ products a type
    rows = []
    for kind, colours, words in (("Tshirts", ("Blue", "Black"), "Round Neck T-shirt"), ("Watches", ("Gold", "Black"), "Dial Analogue Watch")):
        for i in range(12):
            gender, colour = ("Men" if i % 2 else "Women"), colours[0 if i % 3 else 1]
            rows.append((gender, kind, colour, f"Brand{i} {gender} {colour} {words}"))
    _catalog(tmp_path / "fashion", rows)
    out = tmp_path / "ft.json"

    call_command("evaluate", "fashion_text", "--data", str(tmp_path / "fashion"), "--json", str(out))

    result = json.loads(out.read_text())
    assert result["dataset"] == "fashion_text" and result["n_products"] == 24 and result["n_queries"] >= 8
    assert {"bm25", "text_knn", "fused_knn", "rrf_bm25_text", "hybrid", "hybrid_no_cutoff", "hybrid_no_exact", "hybrid_adaptive"} == set(result["systems"])
    # a two-type catalog: every system puts the asked type first most of the time
    for name, scores in result["systems"].items():
        assert scores["ndcg@10"] > 0.6, name
