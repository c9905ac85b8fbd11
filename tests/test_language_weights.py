"""Retriever weights by the script of the query (search.hybrid.language): pure functions, no models."""

from __future__ import annotations

import pytest

from search.hybrid.language import ENGLISH_ONLY_WEIGHT, SOUND_WEIGHT, is_other_script, language_weights

WEIGHTS = {"bm25": 1.33, "text_knn": 1.0, "fused_knn": 1.0, "image_knn": 4.0, "text_e5_knn": 1.0, "clicks": 1.0}
ALL_TEXT = ("bm25", "text_knn", "fused_knn", "text_e5_knn")


@pytest.mark.parametrize("text, other", [
    ("纯棉浴巾", True), ("सूती तौलिया", True), ("полотенце", True), ("我想买 12 条毛巾", True),
    ("cotton towel", False), ("towel 毛巾", False), ("红色iPhone 12", False), ("Café crème", False), ("", False), ("12", False),
])
def test_other_script_means_letters_and_none_latin(text, other):
    assert is_other_script(text) is other


@pytest.mark.parametrize("text", ["cotton bath towel", "towel 毛巾", "红色iPhone 12"])
def test_a_query_with_a_latin_word_keeps_its_weights(text):
    assert language_weights(text, WEIGHTS, answered=ALL_TEXT) == WEIGHTS


def test_chinese_query_leans_on_bm25_and_e5_when_they_answer():
    # when
    weights = language_weights("纯棉浴巾", WEIGHTS, answered=ALL_TEXT)
    # then: the English-only models step aside; everything else is as it was
    assert weights == {**WEIGHTS, "text_knn": ENGLISH_ONLY_WEIGHT, "fused_knn": ENGLISH_ONLY_WEIGHT}
    assert ENGLISH_ONLY_WEIGHT == 0.0


def test_hindi_query_with_e5_alone_answering_still_leans_on_it():
    # BM25 found nothing (an English catalog), e5 did
    weights = language_weights("सूती तौलिया", WEIGHTS, answered=("text_knn", "fused_knn", "text_e5_knn"))
    assert (weights["text_knn"], weights["fused_knn"], weights["text_e5_knn"]) == (0.0, 0.0, 1.0)


def test_chinese_catalog_without_e5_leans_on_bm25():
    weights = language_weights("红色 手机壳", {"bm25": 1.0, "text_knn": 1.0, "fused_knn": 1.0}, answered=("bm25", "text_knn", "fused_knn"))
    assert weights == {"bm25": 1.0, "text_knn": 0.0, "fused_knn": 0.0}


@pytest.mark.parametrize("weights, answered", [
    (WEIGHTS, ("text_knn", "fused_knn")),  # neither BM25 nor e5 answered: MiniLM's guesses are all there is
    ({**WEIGHTS, "text_e5_knn": 0.0}, ("text_knn", "fused_knn", "text_e5_knn")),  # e5 turned off by its weight
])
def test_nothing_else_to_lean_on_keeps_the_weights(weights, answered):
    assert language_weights("纯棉浴巾", weights, answered=answered) == weights


def test_photo_query_keeps_its_weights():
    assert language_weights("红色", WEIGHTS, answered=(*ALL_TEXT, "image_knn"), photo=True) == WEIGHTS


def test_weights_given_are_not_changed_in_place():
    weights = dict(WEIGHTS)
    language_weights("纯棉浴巾", weights, answered=ALL_TEXT)
    assert weights == WEIGHTS


@pytest.mark.parametrize("factor, expected", [(1.0, 1.0), (0.25, 0.25)])
def test_the_setting_sets_the_factor_and_one_turns_the_rule_off(settings, factor, expected):
    settings.SEARCH_OTHER_SCRIPT_ENGLISH_ONLY_WEIGHT = factor
    weights = language_weights("纯棉浴巾", WEIGHTS, answered=ALL_TEXT)
    assert (weights["text_knn"], weights["fused_knn"], weights["bm25"]) == (expected, expected, 1.33)


def test_a_translation_that_answered_is_read_like_bm25():
    # an English catalog without e5: only the Chinese query's dictionary translation found products
    weights = language_weights("纯棉浴巾", {"bm25": 1.33, "bm25_translated": 1.33, "text_knn": 1.0, "fused_knn": 1.0},
                               answered=("bm25_translated", "text_knn", "fused_knn"))
    assert weights == {"bm25": 1.33, "bm25_translated": 1.33, "text_knn": 0.0, "fused_knn": 0.0}


def test_a_hindi_translation_guessed_by_sound_weighs_less_than_a_chinese_one():
    weights = {**WEIGHTS, "bm25_translated": 1.33}
    answered = (*ALL_TEXT, "bm25_translated")
    assert language_weights("纯棉浴巾", weights, answered=answered)["bm25_translated"] == 1.33
    assert language_weights("वाईफाई राउटर", weights, answered=answered)["bm25_translated"] == pytest.approx(1.33 * SOUND_WEIGHT)
    assert SOUND_WEIGHT == 0.5


def test_the_sound_weight_is_a_setting(settings):
    settings.SEARCH_TRANSLATION_SOUND_WEIGHT = 1.0
    weights = language_weights("वाईफाई राउटर", {**WEIGHTS, "bm25_translated": 1.33}, answered=ALL_TEXT)
    assert weights["bm25_translated"] == 1.33
