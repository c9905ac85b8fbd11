"""The pieces of search.lexical without a catalog: query syntax, identifier keys, SymSpell
suggestions, condensed runs and TREC files (real libraries: symspellpy, ranx, tantivy)."""

from __future__ import annotations

import pytest

from search.backends._bm25 import BM25Index
from search.backends._spelling import Speller, max_edits
from search.backends.base import SearchDocument
from search.evaluation.metrics import condensed_run, evaluate_run
from search.identifiers import document_identifiers, identifier_keys, looks_like_identifier, query_identifier_keys
from search.lexical import english_words
from search.query import QueryRejected, clean_query, strip_query_syntax

BOOSTS = {"title": 3.0, "brand": 2.0, "category": 1.5, "description": 1.0, "title_phrase": 2.0}


# -- query syntax ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "words"), [
    ("title:foo AND (", "foo"),
    ("brand:samsung OR (lg AND tv)", "samsung lg tv"),
    ('title:"towel" AND (cotton*', "towel cotton"),
    ("price:[100 TO 500]", "100 500"),
    ("watch^2 men~", "watch 2 men"),
    ("a && b || c", "a b c"),
])
def test_query_syntax_is_removed_and_the_words_are_kept(raw, words):
    assert strip_query_syntax(raw) == (words, True)


@pytest.mark.parametrize("raw", ["cotton bath towel", "UFT-TSW-005", "men's t-shirt", "19.5v,3.9a charger", '"cotton towel"'])
def test_ordinary_queries_are_not_flagged_as_syntax(raw):
    words, changed = strip_query_syntax(raw)
    assert not changed and words == raw.replace('"', "")


def test_clean_query_searches_the_words_and_says_the_operators_were_not_used():
    cleaned = clean_query("title:foo AND (")
    assert cleaned.text == "foo"
    assert cleaned.notices == ("Search operators (field names such as title:, AND / OR / NOT, brackets and wildcards) are not used here: "
                               "we searched for the words “foo”.",)


def test_operators_without_words_are_refused():
    with pytest.raises(QueryRejected, match="only search operators"):
        clean_query("title:( AND OR )")


# -- identifiers ------------------------------------------------------------------------------------------------
def test_a_code_in_parts_is_found_by_its_leading_parts():
    assert identifier_keys("UFT-TSW-005-BK-BR") == ["ufttsw005bkbr", "ufttsw005", "ufttsw005bk"]
    assert query_identifier_keys("UFT-TSW-005") == ["ufttsw005"]
    assert query_identifier_keys("uft tsw 005") == ["ufttsw005"]


@pytest.mark.parametrize("token", ["16GB", "1000W", "2.5mm", "2016", "towel", "XL", "ps4"])
def test_words_sizes_and_quantities_are_not_identifiers(token):
    assert not looks_like_identifier(token)


def test_a_product_is_keyed_by_its_ids_model_numbers_and_code_like_title_words():
    keys = document_identifiers(
        external_id="dd0e3470a7e6ed76fd69c2da27721041", title="Maxima 24742LMGY Gold Analog Watch - For Men",
        specifications={"Model ID": "Duster25", "Model Name": "Abstract Polyester Curtain", "Color": "Gold 22"},
        source_row={"pid": "WATEG3D4AGMBQWSA"},
    )
    assert keys == ("dd0e3470a7e6ed76fd69c2da27721041", "wateg3d4agmbqwsa", "duster25", "24742lmgy")


# -- spelling ---------------------------------------------------------------------------------------------------
def test_symspell_corrects_one_edit_from_four_letters_and_two_from_eight():
    speller = Speller({"cotton": 30, "towel": 40, "samsung": 5, "rotten": 1, "bedsheet": 9})
    assert speller.suggest(["cotten", "towl", "samsnug", "bedshets", "foo"]) == {
        "cotten": "cotton", "towl": "towel", "samsnug": "samsung", "bedshets": "bedsheet"}
    assert [max_edits(w) for w in ("foo", "towl", "bedshets", "a4tech")] == [0, 1, 2, 0]


def test_equally_close_candidates_are_weighed_by_the_other_words_of_the_query():
    speller = Speller({"cover": 300, "cooker": 20, "pressure": 25})
    together = {"cover": 0, "cooker": 18}
    assert speller.suggest(["coker"]) == {"coker": "cover"}
    assert speller.suggest(["coker"], lambda candidate: together[candidate]) == {"coker": "cooker"}


def test_english_words_are_never_taken_for_typos():
    assert {"sneakers", "wristwatch", "towel"} <= english_words()
    assert not {"cotten", "towl", "samsnug"} & english_words()


def test_an_index_written_before_the_new_fields_still_serves_bm25(tmp_path):
    import tantivy

    # given an index made with the schema of before (no spelling or identifier field)
    sb = tantivy.SchemaBuilder()
    sb.add_unsigned_field("id", stored=True, indexed=True, fast=True)
    for name in ("title", "brand", "category", "description"):
        sb.add_text_field(name, tokenizer_name="en_shop")
    sb.add_text_field("brand_key", tokenizer_name="raw", fast=True)
    sb.add_text_field("category_key", tokenizer_name="raw")
    sb.add_float_field("price", indexed=True, fast=True)
    sb.add_float_field("rating", fast=True)
    tantivy.Index(sb.build(), path=str(tmp_path), reuse=True)
    # when it is opened and written to
    index = BM25Index(tmp_path, BOOSTS)
    index.write([SearchDocument(id=7, title="Cotton Bath Towel", identifiers=("ufttsw005",))], [])
    # then BM25 answers, and spelling and identifiers wait for a reindex
    assert not index.has_lexical_fields
    assert [h.id for h in index.search("towel", None, 10)] == [7]
    assert index.vocabulary() == {} and index.search_identifiers(["ufttsw005"], None, 10) == []


def test_a_new_index_holds_words_as_written_and_identifiers_exactly(tmp_path):
    index = BM25Index(tmp_path, BOOSTS)
    index.write([
        SearchDocument(id=1, title="Cotton Bath Towels", brand="Trident", identifiers=("ufttsw005",)),
        SearchDocument(id=2, title="Pressure Cooker", description="pressure release valve"),
    ], [])
    assert index.vocabulary() == {"cotton": 1, "bath": 1, "towels": 1, "trident": 1, "pressure": 1, "cooker": 1}
    assert index.known_words(["towel", "valve", "towl", "the"]) == {"towel", "valve", "the"}
    assert [h.id for h in index.search_identifiers(["ufttsw005"], None, 10)] == [1]
    assert index.count_holding_all(["pressure", "cooker"]) == 1 and index.count_holding_all(["pressure", "towel"]) == 0


# -- evaluation -------------------------------------------------------------------------------------------------
def test_condensed_lists_drop_unjudged_products_and_keep_judged_irrelevant_ones():
    qrels = {"q1": {1: 2, 2: 0, 3: 1}}
    run = {"q1": [9, 2, 1, 8, 3]}
    assert condensed_run(qrels, run) == {"q1": [2, 1, 3]}
    # an unjudged product in front costs the standard figure, not the condensed one
    standard = evaluate_run(qrels, run, ["ndcg@10"])["ndcg@10"]
    condensed = evaluate_run(qrels, condensed_run(qrels, run), ["ndcg@10"])["ndcg@10"]
    assert standard < condensed < 1.0


def test_identifier_matches_go_first_in_the_order_the_ranking_gave_them():
    from search.backends.base import FusedResult
    from search.lexical import pin_first

    fused = [FusedResult(pid, score) for pid, score in ((1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6))]
    pinned = pin_first(fused, (9, 4, 2))
    assert [r.id for r in pinned] == [2, 4, 9, 1, 3]
    assert all(r.score == 0.9 and r.parts[-1].retriever == "identifier" for r in pinned[:3])
