"""Elasticsearch index settings and mapping: the one place that says how products are stored.

Every index build (``products-<timestamp>``) is created from :func:`index_body`. Fields:

============== ============================ ==================================================
field          type                         used for
============== ============================ ==================================================
product_id     long                         the id (also ``_id``); stable sort for browsing
external_id    keyword                      the source catalog's id
identifiers    keyword, one value per key   exact identifier matches (``search.identifiers``)
title          text (English) + ``.prefix`` BM25 (boost 3); prefix matching as you type
               + ``.words``                 ``.words``: words of other scripts (below)
brand          text (English) + ``.raw``    BM25 (boost 2); ``.raw`` keyword for filters/facets
               + ``.words``
category       text (English) + ``.words``  BM25 (boost 1.5) over every category name
category_path  keyword, one value per level filter by a category and all below it (a term
                                            query), facets one level down
merchant       keyword                      filter by seller
description    text (English) + ``.words``  BM25 (boost 1)
spell          text (lower-cased words)     spelling suggestions: title, brand and category
                                            copied in as written (``copy_to``), not stemmed
price          scaled_float (x100)          range filters, price bands (paise precision)
rating         half_float                   browsing order
text_vector    dense_vector 384, cosine     kNN on MiniLM text embeddings
image_vector   dense_vector 1280, cosine    kNN on EfficientNet-Lite0 photo features
fused_vector   dense_vector <fusion dim>    kNN in the shared text-photo space
============== ============================ ==================================================

Words in other scripts: every text field has a ``.words`` sub-field analysed by ``words``
(:func:`analysis`), which a query with non-Latin letters searches with those words
(``search.backends.elasticsearch.queries.text_query``). With Elasticsearch's built-in analysis
(``WORDS_TOKENIZER`` ``standard``, the default: no plugin) the standard tokenizer (Unicode word
segmentation, UAX #29) keeps Devanagari words whole, ``indic_normalization`` and
``hindi_normalization`` fold spelling variants, and ``cjk_bigram`` turns Chinese runs into
overlapping character pairs (a query's pairs must occur in a product's text, so a single shared
character never matches). ``icu`` uses the analysis-icu plugin's ``icu_tokenizer`` instead,
which segments Chinese into dictionary words as the embedded engine's jieba does. The English
fields never see Chinese characters of a query, so there are no single-character matches.

``dynamic: strict``: a document with a field not listed here is rejected (and recorded on
its product) instead of growing the mapping by accident. There is no popularity field: clicks
reorder results after fusion (``search.hybrid.click_prior``) on every engine alike, so a click
is counted once and within the rank caps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from search.backends._segment import OTHER_STOP_WORDS


class _VectorFieldNames(dict):
    """Backend vector role -> field name in the index: ``<role>_vector``, for the three roles every
    product has and for any additional one (an additional text encoder's, e.g. ``text_e5`` ->
    ``text_e5_vector``); a role that is not a plain lower-case name is a ``KeyError``."""

    def __missing__(self, role: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,48}", str(role)):
            raise KeyError(role)
        return f"{role}_vector"


#: Vector field name in the index for each backend vector role.
VECTOR_FIELD_NAMES = _VectorFieldNames(text="text_vector", image="image_vector", fused="fused_vector")

#: dense_vector ``index_options.type`` per quantisation setting. ``int8_hnsw`` (Elasticsearch's
#: own default for float vectors since 8.14) keeps ~4x less memory than ``hnsw`` for a small
#: recall loss; ``bbq_hnsw`` (8.16+) ~32x less, for large catalogs (needs dims >= 64).
QUANTIZATIONS = {"none": "hnsw", "int8": "int8_hnsw", "bbq": "bbq_hnsw"}
#: First stack version with each index type (from Elastic's release notes; 8.12 is our floor).
QUANTIZATION_SINCE = {"hnsw": (8, 0), "int8_hnsw": (8, 12), "bbq_hnsw": (8, 16)}

#: HNSW graph parameters: Elasticsearch's defaults (m=16, ef_construction=100), written out so a
#: change is a deliberate one. Recall is tuned at query time through ``num_candidates``.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100

#: Price stored as a long of paise (INR x 100): exact to the paisa, 8 bytes with doc values.
PRICE_SCALING_FACTOR = 100

#: Refresh policy. The live index refreshes every second so a worker's writes reach shoppers
#: within about a second (set explicitly, which also keeps shards from going search-idle and
#: making the first search after a quiet spell wait for a refresh). A build being filled has
#: refreshes off (-1) and no replicas, which makes bulk loading faster; both are restored
#: before the build is checked and swapped in.
LIVE_REFRESH_INTERVAL = "1s"
BUILD_REFRESH_INTERVAL = "-1"

#: Deepest ``from + size`` a search may ask for (Elasticsearch's default, stated explicitly).
#: The storefront's browse listing asks for at most 5,000.
MAX_RESULT_WINDOW = 10_000

#: Words of titles, brands and categories as written, for spelling suggestions.
SPELL_FIELD = "spell"

#: Prefix sub-field: edge n-grams of 2..15 characters ("tow" -> "towel"); longer words are
#: matched by the English-analysed field itself.
EDGE_NGRAM_MIN = 2
EDGE_NGRAM_MAX = 15

#: The English stop words of Lucene's ``_english_`` set (what the ``english`` analyzer drops).
#: The analyzer and the sub-field (``title.words``...) of words in other scripts.
WORDS_ANALYZER = "words"
WORDS_SUBFIELD = "words"
#: Tokenizer of the ``words`` analyzer: ``standard`` (built in) or ``icu`` (the analysis-icu plugin).
WORDS_TOKENIZERS = ("standard", "icu")

ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)


@dataclass(frozen=True)
class IndexOptions:
    """Cluster-facing knobs of one index build.

    Attributes:
        shards: primary shards (1 suits catalogs up to tens of millions of small documents).
        replicas: replica copies of the live index (0 on a single-node cluster).
        quantization: key of :data:`QUANTIZATIONS`.
        words_tokenizer: one of :data:`WORDS_TOKENIZERS` (``icu`` needs the analysis-icu plugin).
    """

    shards: int = 1
    replicas: int = 0
    quantization: str = "int8"
    words_tokenizer: str = "standard"

    def __post_init__(self):
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"Unknown vector quantization {self.quantization!r}; valid: {', '.join(QUANTIZATIONS)}")
        if self.words_tokenizer not in WORDS_TOKENIZERS:
            raise ValueError(f"Unknown words tokenizer {self.words_tokenizer!r}; valid: {', '.join(WORDS_TOKENIZERS)}")
        if self.shards < 1 or self.replicas < 0:
            raise ValueError(f"shards must be >= 1 and replicas >= 0, got {self.shards} and {self.replicas}")


def analysis(words_tokenizer: str = "standard") -> dict:
    """Custom analyzers: the edge-n-gram prefix analyzer and its search-time twin, and ``words``
    for text in other scripts (Chinese, Hindi; see the module docstring).

    Args:
        words_tokenizer: one of :data:`WORDS_TOKENIZERS`.
    """
    if words_tokenizer == "icu":
        words = {"type": "custom", "tokenizer": "icu_tokenizer",
                 "filter": ["cjk_width", "lowercase", "decimal_digit", "indic_normalization", "hindi_normalization", "words_stop"]}
    else:
        words = {"type": "custom", "tokenizer": "standard",
                 "filter": ["cjk_width", "lowercase", "decimal_digit", "indic_normalization", "hindi_normalization", "words_stop",
                            "cjk_bigram"]}
    return {
        "filter": {
            "prefix_edge_ngram": {"type": "edge_ngram", "min_gram": EDGE_NGRAM_MIN, "max_gram": EDGE_NGRAM_MAX},
            "english_stop": {"type": "stop", "stopwords": "_english_"},
            "words_stop": {"type": "stop", "stopwords": list(OTHER_STOP_WORDS)},
        },
        "analyzer": {
            "prefix_index": {
                "type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding", "prefix_edge_ngram"],
            },
            # Stop words are dropped at search time so "and"/"the" do not prefix-match "android"/"theme".
            "prefix_search": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding", "english_stop"]},
            # Words as written, for the term suggester: a suggestion is a word of the catalog, not a stem.
            "spell_words": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]},
            WORDS_ANALYZER: words,
        },
    }


def mappings(vector_dims: dict[str, int], quantization: str = "int8") -> dict:
    """The index mapping.

    Args:
        vector_dims: backend vector role -> dimension, e.g. ``{"text": 384, "image": 1280, "fused": 384}``.
        quantization: key of :data:`QUANTIZATIONS`.

    Raises:
        ValueError: a vector role that is not a lower-case name, an unknown quantization, or ``bbq``
            with fewer than 64 dims.
    """
    index_type = QUANTIZATIONS[quantization]
    english = {"type": "text", "analyzer": "english"}
    words = {WORDS_SUBFIELD: {"type": "text", "analyzer": WORDS_ANALYZER}}
    properties: dict[str, dict] = {
        "product_id": {"type": "long"},
        "external_id": {"type": "keyword", "ignore_above": 256},
        "identifiers": {"type": "keyword", "ignore_above": 256},
        "title": {
            **english, "copy_to": [SPELL_FIELD],
            "fields": {"prefix": {"type": "text", "analyzer": "prefix_index", "search_analyzer": "prefix_search"}, **words},
        },
        "brand": {**english, "copy_to": [SPELL_FIELD], "fields": {"raw": {"type": "keyword", "ignore_above": 256}, **words}},
        "category": {**english, "copy_to": [SPELL_FIELD], "fields": words},
        SPELL_FIELD: {"type": "text", "analyzer": "spell_words"},
        "category_path": {"type": "keyword", "ignore_above": 1024},
        "merchant": {"type": "keyword", "ignore_above": 256},
        "description": {**english, "fields": words},
        "price": {"type": "scaled_float", "scaling_factor": PRICE_SCALING_FACTOR},
        "rating": {"type": "half_float"},
    }
    for role, dims in vector_dims.items():
        try:
            name = VECTOR_FIELD_NAMES[role]
        except KeyError:
            raise ValueError(f"Unknown vector field {role!r}: a vector field is a lower-case name, e.g. {', '.join(VECTOR_FIELD_NAMES)}") from None
        if index_type == "bbq_hnsw" and dims < 64:
            raise ValueError(f"bbq quantization needs at least 64 dimensions; {role} has {dims}")
        properties[name] = {
            "type": "dense_vector",
            "dims": int(dims),
            "element_type": "float",
            "index": True,
            "similarity": "cosine",
            "index_options": {"type": index_type, "m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
        }
    return {"dynamic": "strict", "properties": properties}


def index_body(vector_dims: dict[str, int], options: IndexOptions | None = None, *, building: bool = True) -> dict:
    """Body of ``PUT /products-<timestamp>``: settings (with analysis) and mappings.

    Args:
        vector_dims: see :func:`mappings`.
        options: shards, replicas, quantization.
        building: True for a build about to be bulk-loaded (no refresh, no replicas until
            :func:`live_settings` is applied), False for an index that serves at once.
    """
    options = options or IndexOptions()
    return {
        "settings": {
            "index": {
                "number_of_shards": options.shards,
                "number_of_replicas": 0 if building else options.replicas,
                "refresh_interval": BUILD_REFRESH_INTERVAL if building else LIVE_REFRESH_INTERVAL,
                "max_result_window": MAX_RESULT_WINDOW,
            },
            "analysis": analysis(options.words_tokenizer),
        },
        "mappings": mappings(vector_dims, options.quantization),
    }


def live_settings(options: IndexOptions | None = None) -> dict:
    """Body of ``PUT /<build>/_settings`` applied when a build is complete, before the swap."""
    options = options or IndexOptions()
    return {"index": {"refresh_interval": LIVE_REFRESH_INTERVAL, "number_of_replicas": options.replicas}}


def write_block(blocked: bool) -> dict:
    """Body of ``PUT /<index>/_settings`` that blocks (or allows again) writes to an index."""
    return {"index": {"blocks": {"write": blocked}}}
