"""Chinese and Hindi words on the Elasticsearch backend: the ``words`` analyzer and sub-fields in the
index body, and where a query's words go, each body checked against Elastic's API specification.

No cluster runs here: bodies are built by the backend's own functions (and, for index creation,
sent by the real client to the recorded fake cluster of ``fake_es.py``) and validated by
``es_spec.Spec``; what Elasticsearch's analyzers then do with the words is Elastic's documented
behaviour, not tested here.
"""

from __future__ import annotations

import json

import pytest

from search.backends.elasticsearch import mapping as es_mapping
from search.backends.elasticsearch import queries as es_queries
from tests.backends.es_spec import Spec

BOOSTS = {"title": 3.0, "brand": 2.0, "category": 1.5, "description": 1.0, "title_phrase": 2.0}
DIMS = {"text": 384, "image": 1280, "fused": 384}


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec()


@pytest.mark.parametrize("tokenizer", ["standard", "icu"])
def test_index_body_with_the_words_analyzer_is_valid(spec, tokenizer):
    # when
    body = es_mapping.index_body(DIMS, es_mapping.IndexOptions(words_tokenizer=tokenizer))
    # then
    spec.validate("indices.create", body)
    words = body["settings"]["analysis"]["analyzer"]["words"]
    assert words["tokenizer"] == {"standard": "standard", "icu": "icu_tokenizer"}[tokenizer]
    assert ("cjk_bigram" in words["filter"]) == (tokenizer == "standard")
    assert {"indic_normalization", "hindi_normalization", "words_stop"} <= set(words["filter"])
    stop = body["settings"]["analysis"]["filter"]["words_stop"]
    assert "的" in stop["stopwords"] and "की" in stop["stopwords"]
    props = body["mappings"]["properties"]
    for field in ("title", "brand", "category", "description"):
        assert props[field]["analyzer"] == "english"
        assert props[field]["fields"]["words"] == {"type": "text", "analyzer": "words"}
    assert props["title"]["fields"]["prefix"]["analyzer"] == "prefix_index"  # the other sub-fields stay
    assert props["brand"]["fields"]["raw"]["type"] == "keyword"


def test_unknown_words_tokenizer_is_refused():
    with pytest.raises(ValueError, match="Unknown words tokenizer 'smartcn'; valid: standard, icu"):
        es_mapping.IndexOptions(words_tokenizer="smartcn")


def test_backend_creates_its_index_with_the_words_sub_fields(spec, fake_es):
    # given
    backend, cluster = fake_es()
    # when
    backend.count()
    # then
    (create,) = [r for r in cluster.requests if spec.endpoint_for(r.method, r.path) == "indices.create"]
    spec.validate("indices.create", create.body, create.params)
    assert create.body["mappings"]["properties"]["description"]["fields"]["words"]["analyzer"] == "words"


def test_english_query_body_is_unchanged_by_the_sub_fields(spec):
    # when
    body = es_queries.text_search_body("cotton bath towel", None, 10, BOOSTS)
    # then
    spec.validate("search", body)
    assert ".words" not in json.dumps(body)
    should = body["query"]["bool"]["should"]
    assert should[0]["multi_match"]["query"] == "cotton bath towel"
    assert should[0]["multi_match"]["fields"] == ["title^3", "brand^2", "category^1.5", "description^1"]


@pytest.mark.parametrize("query", ["纯棉浴巾", "पुरुषों की घड़ी"])
def test_chinese_or_hindi_query_searches_only_the_words_sub_fields(spec, query):
    # when
    body = es_queries.text_search_body(query, None, 10, BOOSTS)
    # then
    spec.validate("search", body)
    (only,) = body["query"]["bool"]["should"]
    assert only == {"multi_match": {
        "query": query, "fields": ["title.words^3", "brand.words^2", "category.words^1.5", "description.words^1"], "type": "best_fields",
    }}
    assert "fuzziness" not in json.dumps(body)  # exact words: no single-character or one-edit matches


def test_mixed_query_sends_latin_words_to_english_fields_and_chinese_to_words(spec):
    # when
    body = es_queries.text_search_body("红色iPhone 12 手机壳", None, 10, BOOSTS)
    # then
    spec.validate("search", body)
    should = body["query"]["bool"]["should"]
    english = should[0]["multi_match"]
    assert english["query"] == "iPhone 12" and english["fuzziness"] == "AUTO"
    assert should[1] == {"match": {"title.prefix": {"query": "iPhone 12", "operator": "and", "boost": es_queries.PREFIX_BOOST}}}
    assert should[2]["multi_match"]["query"] == "红色iPhone 手机壳"
    assert should[3] == {"match_phrase": {"title": {"query": "iPhone 12", "boost": 2.0}}}


@pytest.mark.parametrize("text, expected", [
    ("cotton towel", ("cotton towel", "")),
    ("红色iPhone 12", ("iPhone 12", "红色iPhone")),
    ("सूती तौलिया", ("", "सूती तौलिया")),
    ("Café crème", ("Café crème", "")),  # accented Latin stays Latin
])
def test_split_scripts(text, expected):
    assert es_queries.split_scripts(text) == expected
