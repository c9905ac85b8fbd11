"""Request bodies the Elasticsearch backend sends, built by small pure functions.

Kept apart from the client calls so that every body can be checked offline against Elastic's
API specification (``tests/backends/test_es_spec.py``). Shopper text only ever becomes the
``query`` value of ``match`` / ``multi_match`` (analysed into terms, never parsed), so Lucene
syntax such as ``title:(a OR b*)`` is searched as words and cannot change the query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from search.backends._segment import has_non_latin, split_scripts
from search.backends.base import SearchDocument, SearchFilters
from search.backends.elasticsearch.mapping import SPELL_FIELD, VECTOR_FIELD_NAMES, WORDS_SUBFIELD
from search.backends.retrieval import FusionRequest, Retrieval, TextRetrieval

#: Elasticsearch's upper bound on ``k`` and ``num_candidates`` of one kNN search.
MAX_KNN = 10_000
#: Terms of a shopper query sent to BM25. Fuzzy matching expands every term into up to
#: ``FUZZY_MAX_EXPANSIONS`` variants per field, so 64 terms stay far below the cluster's clause
#: limit; the storefront already caps queries at 200 characters (~35 words).
MAX_QUERY_TERMS = 64
#: Variants one fuzzy term may expand to (Elasticsearch's default, written out) and the leading
#: characters that must match exactly (1: "towel" still finds "towle", but not "howel"; it
#: keeps expansion cheap).
FUZZY_MAX_EXPANSIONS = 50
FUZZY_PREFIX_LENGTH = 1
#: Weight of the prefix sub-field (``title.prefix``) relative to a full title match (3.0).
PREFIX_BOOST = 0.5

_LUCENE_REGEX_SPECIALS = re.compile(r'([.?+*|{}\[\]()"\\#@&<>~])')


def limit_terms(query: str, max_terms: int = MAX_QUERY_TERMS) -> str:
    """The first ``max_terms`` words of ``query``, with colons read as spaces.

    Unicode word segmentation (Lucene's standard tokenizer) keeps ``title:towel`` as one token
    because a colon may join letters (UAX #29, MidLetter); in a shopper's query it separates words.
    """
    words = query.replace(":", " ").split()
    return " ".join(words[:max_terms])


def filter_clauses(filters: SearchFilters | None) -> list[dict]:
    """Filter context clauses: exact category path (or any ancestor), brands, price range.

    Raises:
        ValueError: a price bound is not a finite number.
    """
    if filters is None or filters.is_empty:
        return []
    clauses: list[dict] = []
    if filters.category_parts:
        clauses.append({"term": {"category_path": " > ".join(filters.category_parts)}})
    if filters.brands:
        clauses.append({"terms": {"brand.raw": list(filters.brands)}})
    bounds = {}
    for key, value in (("gte", filters.price_min), ("lte", filters.price_max)):
        if value is None:
            continue
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"Price filter {key} must be a finite number, got {value}")
        bounds[key] = value
    if bounds:
        clauses.append({"range": {"price": bounds}})
    return clauses


def text_query(query: str, boosts: Mapping[str, float]) -> dict:
    """BM25 over the text fields with boosts, typo tolerance and prefix matching.

    ``multi_match`` (``best_fields``, ``fuzziness: AUTO``: 0 edits up to 2 characters, 1 up to
    5, 2 beyond) over ``title^3 brand^2 category^1.5 description`` (boosts from settings), or a
    match on ``title.prefix`` for words still being typed, a ``match_phrase`` on ``title`` boosted
    by ``boosts["title_phrase"]`` for queries of two or more words. Clicks never enter BM25: the
    click prior is applied after fusion by ``search.hybrid``, the same way on every engine.

    Words with non-Latin letters (Chinese, Hindi; :func:`split_scripts`) are matched exactly
    (no fuzziness: one edit in a two-character Chinese word is another word) on the ``.words``
    sub-fields with the same boosts; the Latin words alone go to the clauses above. A query of
    Latin words only builds the same body as before the sub-fields existed.
    """
    text = limit_terms(query)
    latin, other = split_scripts(text) if has_non_latin(text) else (text, "")
    fields = [f"{name}^{boost:g}" for name, boost in boosts.items() if boost > 0 and name != "title_phrase"]
    should: list[dict] = []
    if latin:
        should += [
            {"multi_match": {
                "query": latin, "fields": fields, "type": "best_fields", "fuzziness": "AUTO",
                "prefix_length": FUZZY_PREFIX_LENGTH, "max_expansions": FUZZY_MAX_EXPANSIONS,
            }},
            {"match": {"title.prefix": {"query": latin, "operator": "and", "boost": PREFIX_BOOST}}},
        ]
    if other:
        word_fields = [f"{name}.{WORDS_SUBFIELD}^{boost:g}" for name, boost in boosts.items() if boost > 0 and name != "title_phrase"]
        should.append({"multi_match": {"query": other, "fields": word_fields, "type": "best_fields"}})
    phrase_boost = boosts.get("title_phrase", 0.0)
    if phrase_boost > 0 and latin and len(latin.split()) > 1:
        should.append({"match_phrase": {"title": {"query": latin, "boost": phrase_boost}}})
    if not should:  # no word left (only syntax characters): nothing matches
        return {"match_none": {}}
    return {"bool": {"should": should, "minimum_should_match": 1}}


def text_search_body(query: str | None, filters: SearchFilters | None, limit: int, boosts: Mapping[str, float]) -> dict:
    """``_search`` body for :meth:`search_text`: BM25 with filters, or browse by filters (best rated first)."""
    size = max(0, min(int(limit), MAX_KNN))
    clauses = filter_clauses(filters)
    if query is None:
        return {
            "query": {"bool": {"filter": clauses}} if clauses else {"match_all": {}},
            "sort": [{"rating": {"order": "desc", "missing": "_last"}}, {"product_id": {"order": "desc"}}],
            "size": size, "_source": False, "track_total_hits": False,
        }
    q = text_query(query, boosts)
    if clauses:
        q = {"bool": {"must": [q], "filter": clauses}}
    return {"query": q, "size": size, "_source": False, "track_total_hits": False}


def num_candidates(k: int, factor: float) -> int:
    """Candidates per shard for a kNN of ``k``: ``ceil(k * factor)`` within [k, 10,000]."""
    return max(k, min(MAX_KNN, math.ceil(k * factor)))


def knn_section(role: str, vector: np.ndarray, k: int, filters: SearchFilters | None, *, candidates_factor: float) -> dict:
    """The ``knn`` object (``KnnSearch``): filters go *inside* it, so they pre-filter the HNSW walk
    and a filtered search still returns ``k`` hits when ``k`` documents pass."""
    k = max(1, min(int(k), MAX_KNN))
    knn = {
        "field": VECTOR_FIELD_NAMES[role],
        "query_vector": vector_json(vector),
        "k": k,
        "num_candidates": num_candidates(k, candidates_factor),
    }
    clauses = filter_clauses(filters)
    if clauses:
        knn["filter"] = clauses
    return knn


def knn_search_body(role: str, vector: np.ndarray, k: int, filters: SearchFilters | None, *, candidates_factor: float) -> dict:
    """``_search`` body for :meth:`search_vector`."""
    knn = knn_section(role, vector, k, filters, candidates_factor=candidates_factor)
    return {"knn": knn, "size": knn["k"], "_source": False, "track_total_hits": False}


def search_body(retrieval: Retrieval, boosts: Mapping[str, float], *, candidates_factor: float) -> dict:
    """The ``_search`` body of one retrieval (BM25 or kNN), as :meth:`search_text` / :meth:`search_vector` send it."""
    if isinstance(retrieval, TextRetrieval):
        return text_search_body(retrieval.query, retrieval.filters, retrieval.limit, boosts)
    return knn_search_body(retrieval.field, retrieval.vector, retrieval.k, retrieval.filters, candidates_factor=candidates_factor)


def msearch_searches(bodies: Sequence[dict]) -> list[dict]:
    """``_msearch`` ndjson lines: an empty header (the index is in the URL) before each body."""
    lines: list[dict] = []
    for body in bodies:
        lines += [{}, body]
    return lines


def retrievers(request: FusionRequest, boosts: Mapping[str, float], *, candidates_factor: float) -> dict[str, dict]:
    """Child retrievers of a fusion request by name (``bm25``, ``text_knn``...), each with its filters
    inside and each returning the request's ``window`` hits."""
    out: dict[str, dict] = {}
    for r in request.retrievals:
        if isinstance(r, TextRetrieval):
            standard: dict = {"query": text_query(r.query, boosts)}
            clauses = filter_clauses(r.filters)
            if clauses:
                standard["filter"] = clauses
            out[r.name] = {"standard": standard}
        else:
            out[r.name] = {"knn": knn_section(r.field, r.vector, request.window, r.filters, candidates_factor=candidates_factor)}
    return out


def fused_body(request: FusionRequest, boosts: Mapping[str, float], *, candidates_factor: float, weighted_rrf: bool) -> dict:
    """``_search`` body running a whole :class:`~search.backends.retrieval.FusionRequest` on the cluster.

    Raises:
        ValueError: an unknown method.
    """
    children = retrievers(request, boosts, candidates_factor=candidates_factor)
    if request.method == "linear":
        return linear_body(children, request.weights, k=request.window)
    if request.method == "rrf":
        return rrf_body(children, request.weights, k=request.window, rank_constant=request.rrf_k, weighted=weighted_rrf)
    raise ValueError(f"Unknown fusion method {request.method!r}; valid: rrf, linear")


def rrf_body(children: Mapping[str, dict], weights: Mapping[str, float], *, k: int, rank_constant: int, weighted: bool) -> dict:
    """``_search`` body with an ``rrf`` retriever over ``children``.

    Args:
        children: retriever name -> retriever container (from :func:`retrievers`).
        weights: retriever name -> weight (1.0 when missing); retrievers weighted 0 are left out.
        k: hits returned, and each child's window (``rank_window_size``).
        rank_constant: RRF's k (60 in Cormack et al. 2009).
        weighted: send ``{"retriever": ..., "weight": w}`` entries (Elasticsearch 9.2+); else
            plain retrievers, which weigh every child 1.0.
    """
    entries = []
    for name, child in children.items():
        w = float(weights.get(name, 1.0))
        if w == 0:
            continue
        entries.append({"retriever": child, "weight": w} if weighted else child)
    size = max(1, min(int(k), MAX_KNN))
    return {
        "retriever": {"rrf": {"retrievers": entries, "rank_constant": int(rank_constant), "rank_window_size": size}},
        "size": size, "_source": False,
    }


def linear_body(children: Mapping[str, dict], weights: Mapping[str, float], *, k: int) -> dict:
    """``_search`` body with a ``linear`` retriever: ``sum_r w_r * minmax(score_r)`` (as ``search.hybrid.fusion.linear``)."""
    entries = [
        {"retriever": child, "weight": float(weights.get(name, 1.0)), "normalizer": "minmax"}
        for name, child in children.items()
        if float(weights.get(name, 1.0)) != 0
    ]
    size = max(1, min(int(k), MAX_KNN))
    return {"retriever": {"linear": {"retrievers": entries, "rank_window_size": size}}, "size": size, "_source": False}


def known_words_body(words: Sequence[str], boosts: Mapping[str, float]) -> dict:
    """``_search`` body counting, in one request, the documents holding each of ``words`` in a
    BM25 field (a ``filters`` aggregation of one ``multi_match`` per word, no fuzziness)."""
    fields = [name for name, boost in boosts.items() if boost > 0 and name != "title_phrase"]
    return {
        "size": 0, "track_total_hits": False,
        "aggs": {"known": {"filters": {"filters": {
            f"w{i}": {"multi_match": {"query": word, "fields": fields}} for i, word in enumerate(words)
        }}}},
    }


def spelling_body(words: Mapping[str, int]) -> dict:
    """``_search`` body asking the term suggester for each word's closest catalog words.

    Args:
        words: word -> edits allowed (1 or 2; ``search.backends._spelling.max_edits``).

    ``suggest_mode: missing`` suggests only for a word the ``spell`` field does not hold, and
    ``sort: score`` ranks the closest first, then the most frequent (as SymSpell on the
    embedded engine); suggestions are words as written (``spell`` is not stemmed).
    """
    return {
        "size": 0, "_source": False, "track_total_hits": False,
        "suggest": {
            f"w{i}": {"text": word, "term": {
                "field": SPELL_FIELD, "suggest_mode": "missing", "sort": "score", "max_edits": int(edits),
                "prefix_length": 0, "min_word_length": 4, "size": 5,
            }}
            for i, (word, edits) in enumerate(words.items())
        },
    }


def identifiers_body(keys: Sequence[str], filters: SearchFilters | None, limit: int) -> dict:
    """``_search`` body for the products whose ``identifiers`` hold one of ``keys`` exactly."""
    size = max(0, min(int(limit), MAX_KNN))
    return {
        "query": {"bool": {"filter": [{"terms": {"identifiers": list(keys)}}, *filter_clauses(filters)]}},
        "sort": [{"product_id": {"order": "asc"}}], "size": size, "_source": False, "track_total_hits": False,
    }


def escape_regex(text: str) -> str:
    """``text`` as a literal inside a Lucene regular expression (``terms`` aggregation ``include``)."""
    return _LUCENE_REGEX_SPECIALS.sub(r"\\\1", text)


def facets_body(
    query: str | None, filters: SearchFilters | None, price_bands: Sequence[float | None], boosts: Mapping[str, float], *, size: int = 20
) -> dict:
    """Aggregations for the facet sidebar over the documents matching ``query`` and ``filters``.

    Categories one level below the current category filter (``terms`` on ``category_path``
    restricted by a regex to that depth), brands (``terms`` on ``brand.raw``) and price bands
    (``range`` on ``price``, upper bounds exclusive).
    """
    body = text_search_body(query, filters, 0, boosts)
    body.pop("sort", None)
    parts = filters.category_parts if filters is not None else []
    prefix = escape_regex(" > ".join(parts) + " > ") if parts else ""
    ranges = []
    for lo, hi in zip(price_bands[:-1], price_bands[1:], strict=True):
        ranges.append({"key": f"{lo}-{'' if hi is None else hi}", "from": float(lo), **({} if hi is None else {"to": float(hi)})})
    body["aggs"] = {
        "category": {"terms": {"field": "category_path", "size": size, "include": prefix + "[^>]+"}},
        "brand": {"terms": {"field": "brand.raw", "size": size}},
        "price": {"range": {"field": "price", "ranges": ranges}},
    }
    return body


def highlight_body(query: str, ids: Sequence[int], boosts: Mapping[str, float], *, fragment_size: int = 120) -> dict:
    """``_search`` body returning highlighted title/description fragments of ``ids`` for ``query``."""
    return {
        "query": {"bool": {"must": [text_query(query, boosts)], "filter": [{"ids": {"values": [str(i) for i in ids]}}]}},
        "highlight": {
            "pre_tags": ["<mark>"], "post_tags": ["</mark>"], "encoder": "html",
            # The array form (one field per object) is what the specification types; it also keeps the order.
            "fields": [{"title": {"number_of_fragments": 0}}, {"description": {"fragment_size": fragment_size, "number_of_fragments": 2}}],
        },
        "size": len(ids), "_source": False,
    }


def explain_body(query: str, boosts: Mapping[str, float]) -> dict:
    """Body of ``GET /<index>/_explain/<id>``: why one product scores what it does for ``query``."""
    return {"query": text_query(query, boosts)}


def vectors_body(role: str, ids: Sequence[int]) -> dict:
    """``_search`` body fetching the stored ``role`` vector of ``ids`` from ``_source``."""
    return {
        "query": {"ids": {"values": [str(i) for i in ids]}},
        "_source": {"includes": [VECTOR_FIELD_NAMES[role]]},
        "size": len(ids),
    }


def vector_json(vector: np.ndarray) -> list[float]:
    """A float32 vector as a JSON list, rounded to 7 decimals (float32 carries ~7 significant
    digits; rounding roughly halves the bytes of a bulk request)."""
    return np.round(np.asarray(vector, dtype=np.float64).reshape(-1), 7).tolist()


def document_source(doc: SearchDocument) -> dict:
    """The ``_source`` of one product (fields of :mod:`search.backends.elasticsearch.mapping`); empty values left out."""
    src: dict = {"product_id": int(doc.id), "title": doc.title}
    if doc.external_id:
        src["external_id"] = doc.external_id
    if doc.identifiers:
        src["identifiers"] = list(dict.fromkeys(doc.identifiers))
    if doc.brand:
        src["brand"] = doc.brand
    if doc.category_path:
        src["category"] = " ".join(doc.category_path)
        src["category_path"] = [" > ".join(doc.category_path[: i + 1]) for i in range(len(doc.category_path))]
    if doc.merchant:
        src["merchant"] = doc.merchant
    if doc.description:
        src["description"] = doc.description
    if doc.price is not None:
        src["price"] = float(doc.price)
    if doc.rating is not None:
        src["rating"] = float(doc.rating)
    for role, vec in doc.vectors.items():
        if vec is not None:
            src[VECTOR_FIELD_NAMES[role]] = vector_json(vec)
    return src


def index_action(doc: SearchDocument, index: str) -> dict:
    """A ``helpers.streaming_bulk`` action that indexes (inserts or replaces) one product."""
    return {"_op_type": "index", "_index": index, "_id": str(doc.id), "_source": document_source(doc)}


def delete_action(product_id: int, index: str) -> dict:
    """A ``helpers.streaming_bulk`` action that deletes one product (a missing one is not an error)."""
    return {"_op_type": "delete", "_index": index, "_id": str(product_id)}


def swap_actions(
    *, read_alias: str, write_alias: str, new_index: str, old_read: Sequence[str], old_write: Sequence[str]
) -> list[dict]:
    """``POST /_aliases`` actions that move both aliases to ``new_index`` in one atomic step.

    Args:
        old_read, old_write: indexes the read and the write alias point to now (empty at first).
    """
    actions: list[dict] = [{"remove": {"index": old, "alias": read_alias}} for old in old_read]
    actions += [{"remove": {"index": old, "alias": write_alias}} for old in old_write]
    actions.append({"add": {"index": new_index, "alias": read_alias}})
    actions.append({"add": {"index": new_index, "alias": write_alias, "is_write_index": True}})
    return actions
