"""The multilingual judged set on the real Flipkart catalog (no models: loading, judgments, per-language scores)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from search.evaluation.datasets import DatasetError, load_dataset
from search.evaluation.multilingual import INTENTS, LANGUAGES
from search.evaluation.systems import group_scores


@pytest.fixture(scope="module")
def ds():
    return load_dataset("multilingual", Path(settings.CATALOG_DIR) / "flipkart")


def test_every_intent_has_a_chinese_a_hindi_and_an_english_query(ds):
    assert len(INTENTS) >= 40
    assert len(ds.queries) == 3 * len(INTENTS)
    assert {ds.groups[q.id] for q in ds.queries} == set(LANGUAGES)
    texts = {q.id: q.text for q in ds.queries}
    assert texts["en-32"] == "cotton bath towel" and texts["zh-32"] == "纯棉浴巾" and texts["hi-32"] == "सूती तौलिया"
    assert not any(ch.isascii() and ch.isalpha() for q in ds.queries if q.id.startswith("hi-") for ch in q.text)


def test_twins_share_their_judgments_by_category(ds):
    towels = ds.qrels["zh-32"]
    assert towels == ds.qrels["en-32"] == ds.qrels["hi-32"]
    by_id = {p.id: p for p in ds.products}
    assert len(towels) == 20
    assert all(by_id[pid].category_path[:2] == ["Home Furnishing", "Bath Linen"] for pid in towels)
    assert len(ds.products) == 1046  # the importer's rows: 4 without a price or a photo are left out


def test_scores_per_language_and_against_english(ds):
    # given: a run that finds the towels for the English and Hindi queries, nothing for the Chinese one
    towels = sorted(ds.qrels["en-32"])[:10]
    run = {"en-32": towels, "hi-32": towels[:5], "zh-32": []}
    # when
    scores = group_scores(ds, run)
    # then: means over every judged query of each language (the others scored 0)
    n = len(INTENTS)
    assert scores["precision@10 en"] == pytest.approx(1.0 / n)
    assert scores["precision@10 hi"] == pytest.approx(0.5 / n)
    assert scores["precision@10 zh"] == 0.0
    assert scores["hi/en"] == pytest.approx(0.5) and scores["zh/en"] == 0.0


def test_another_catalog_is_refused_naming_the_intent(tmp_path):
    (tmp_path / "products.csv").write_text("uniq_id,product_name\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no product under Beauty and Personal Care > Fragrances"):
        load_dataset("multilingual", tmp_path)
