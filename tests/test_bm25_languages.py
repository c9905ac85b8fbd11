"""BM25 on Chinese and Hindi text: the real analyzer (jieba, tantivy) and a real tantivy index in a
temporary folder (no database, no models)."""

from __future__ import annotations

import pytest

from search.backends._bm25 import BM25Index, build_analyzer
from search.backends._segment import segment
from search.backends.base import SearchDocument

BOOSTS = {"title": 3.0, "brand": 2.0, "category": 1.5, "description": 1.0, "title_phrase": 2.0}
ANALYZER = build_analyzer()


@pytest.mark.parametrize("text, terms", [
    ("红色手机壳", ["红色", "手机", "壳"]),  # no spaces in Chinese: jieba finds the words
    ("红色 手机壳", ["红色", "手机", "壳"]),
    ("我想买一条纯棉的浴巾和一个手表", ["纯棉", "浴巾", "手表"]),  # a sentence; 我/想/买/一条/的/和/一个 are stop words
    ("蓝色男士T恤", ["蓝色", "男士", "t恤"]),
    ("红色iPhone 12", ["红色", "iphon", "12"]),  # the Latin word is analysed as English (stemmed, as before)
    ("पुरुषों की घड़ी", ["पुरुषों", "घड़ी"]),  # Devanagari words whole, with vowel signs and nukta; की is a stop word
    ("स्कूल बैग", ["स्कूल", "बैग"]),  # a virama inside a word does not split it
    ("cotton bath towels for men's T-shirt", ["cotton", "bath", "towel", "men", "s", "t", "shirt"]),  # English as before
])
def test_query_terms(text, terms):
    assert ANALYZER.analyze(text) == terms


@pytest.mark.parametrize("word", ["तौलिया", "कपड़े", "जूते", "साड़ी", "घड़ियाँ", "हेडफ़ोन"])
def test_hindi_words_are_not_stemmed_or_folded(word):
    assert ANALYZER.analyze(word) == [word]


def test_documents_are_segmented_with_the_words_inside_compounds():
    # a query's word is found inside a product's longer word
    assert segment("笔记本电脑包", document=True).split() == ["笔记", "电脑", "笔记本", "笔记本电脑", "包"]
    assert segment("笔记本电脑包").split() == ["笔记本电脑", "包"]


def test_text_without_chinese_is_not_touched():
    text = "Sathiyas Cotton Bath Towel - पुरुषों की घड़ी"
    assert segment(text) is text and segment(text, document=True) is text


def doc(pid: int, title: str, description: str = "", category: tuple[str, ...] = ()) -> SearchDocument:
    return SearchDocument(id=pid, external_id=str(pid), title=title, description=description, category_path=list(category))


@pytest.fixture
def english_catalog(tmp_path) -> BM25Index:
    index = BM25Index(tmp_path / "bm25", BOOSTS)
    index.write([
        doc(1, "Sathiyas Cotton Bath Towel", "Soft cotton bath towel, 70 x 140 cm", ("Home Furnishing", "Bath Linen", "Towels")),
        doc(2, "Apple iPhone 12 Silicone Case (Red)", "A red case for the iPhone 12", ("Mobiles", "Cases")),
        doc(3, "Rega 12 Cell Laptop Battery", "12 cell battery for HP laptops", ("Computers", "Laptop Accessories", "Batteries")),
        doc(4, "Maxima Analog Watch - For Men", "A men's wrist watch", ("Watches", "Wrist Watches")),
    ], [])
    return index


@pytest.mark.parametrize("query", ["纯棉浴巾", "我想买一条纯棉的浴巾和一个手表", "红色 手机壳", "पुरुषों की घड़ी", "सूती तौलिया", "毛"])
def test_chinese_or_hindi_query_on_an_english_catalog_matches_nothing(english_catalog, query):
    # BM25 contributes nothing (the dense retrievers answer such queries), never single-character noise
    assert english_catalog.search(query, None, 10) == []


def test_latin_words_inside_a_chinese_query_still_match(english_catalog):
    hits = english_catalog.search("红色iPhone 12", None, 10)
    assert [h.id for h in hits][:1] == [2]


@pytest.fixture
def mixed_catalog(tmp_path) -> BM25Index:
    index = BM25Index(tmp_path / "bm25", BOOSTS)
    index.write([
        doc(1, "सूती तौलिया", "मुलायम सूती नहाने का तौलिया", ("घर", "तौलिये")),
        doc(2, "पुरुषों की घड़ी", "स्टील की कलाई घड़ी", ("घड़ियाँ",)),
        doc(3, "红色硅胶手机壳", "适用于iPhone 12的红色手机壳", ("手机配件", "手机壳")),
        doc(4, "笔记本电脑包 15.6英寸", "适用15.6英寸笔记本电脑", ("箱包", "电脑包")),
        doc(5, "Cotton Bath Towel", "Soft cotton bath towel", ("Home Furnishing", "Towels")),
    ], [])
    return index


@pytest.mark.parametrize("query, first", [
    ("तौलिया", 1), ("सूती तौलिया", 1), ("घड़ी", 2), ("पुरुषों की घड़ी", 2),
    ("手机壳", 3), ("红色 手机壳", 3), ("电脑", 4), ("笔记本电脑包", 4), ("cotton towel", 5),
])
def test_hindi_and_chinese_products_are_found_by_their_words(mixed_catalog, query, first):
    hits = mixed_catalog.search(query, None, 10)
    assert [h.id for h in hits][:1] == [first]


def test_one_language_does_not_match_another(mixed_catalog):
    assert {h.id for h in mixed_catalog.search("तौलिया", None, 10)} == {1}
    assert {h.id for h in mixed_catalog.search("手机壳", None, 10)} == {3}
