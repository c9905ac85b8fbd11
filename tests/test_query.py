"""Shopper query checks with the real BM25 analyzer (no database, no models)."""

from __future__ import annotations

import pytest

from search.backends._bm25 import build_analyzer
from search.query import MAX_QUERY_CHARS, QueryRejected, clean_query

TERMS = build_analyzer().analyze
FOREIGN_NOTICE = ("This shop's catalog is in English; words in other languages are matched by meaning "
                  "and by product text in the same language, so results may be less precise.")


def rejected(raw: str, **kwargs) -> str:
    with pytest.raises(QueryRejected) as caught:
        clean_query(raw, terms=TERMS, **kwargs)
    return caught.value.reason


@pytest.mark.parametrize("raw", ["", "   ", "\t\n", None, "\x00\x07"])
def test_empty_query_asks_for_words_or_a_photo(raw):
    # then
    assert rejected(raw) == "Type a few words or add a photo to search."


@pytest.mark.parametrize("kwargs", [{"has_image": True}, {"has_filters": True}])
def test_empty_query_is_fine_with_a_photo_or_filters(kwargs):
    # then
    assert clean_query("  ", terms=TERMS, **kwargs).text == ""


def test_query_is_normalised():
    # when: full-width letters, a control character, runs of spaces
    cleaned = clean_query("  ｃｏｔｔｏｎ\x00   towel\n", terms=TERMS)
    # then
    assert cleaned.text == "cotton towel"
    assert cleaned.notices == ()


def test_query_at_the_limit_is_accepted_and_one_more_character_is_not():
    # given
    at_limit = ("towel " * 40)[:MAX_QUERY_CHARS]
    # then
    assert clean_query(at_limit, terms=TERMS).text == at_limit.strip()
    assert rejected(at_limit + "xy") == f"The search is {MAX_QUERY_CHARS + 2} characters long; the limit is {MAX_QUERY_CHARS}. Try a few key words."


def test_ten_thousand_characters_are_refused_with_the_count():
    # then
    assert rejected("a" * 10_000) == "The search is 10,000 characters long; the limit is 200. Try a few key words."


@pytest.mark.parametrize("raw", ["?!...", "-- ;; //", "🧺🧺", '"" () **'])
def test_query_without_letters_or_digits_is_refused(raw):
    # then
    assert rejected(raw) == "The search has no letters or digits. Try words such as 'cotton towel'."


def test_query_of_only_stop_words_is_refused():
    # then
    assert rejected("the and of") == "'the and of' has only very common words. Add what you are looking for, e.g. 'watch for men'."


def test_stop_words_with_a_photo_are_fine():
    # then
    assert clean_query("the and of", terms=TERMS, has_image=True).text == "the and of"


@pytest.mark.parametrize("raw", [
    "纯棉浴巾",  # cotton bath towel
    "我想买一条纯棉的浴巾和一个手表",  # a whole sentence (BM25 reads its words: 纯棉, 浴巾, 手表)
    "полотенце",
])
def test_query_in_another_script_is_searched_with_a_notice(raw):
    # when
    cleaned = clean_query(raw, terms=TERMS)
    # then
    assert cleaned.text == raw
    assert cleaned.notices == (FOREIGN_NOTICE,)


def test_mixed_english_and_chinese_needs_no_notice():
    # then
    assert clean_query("towel 毛巾", terms=TERMS).notices == ()
