"""BM25 half of the embedded engine: a tantivy index (one writer, many reader processes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tantivy

from search.backends._segment import OTHER_STOP_WORDS, segment
from search.backends.base import Hit, SearchDocument, SearchFilters

ANALYZER = "en_shop"
TEXT_FIELDS = ("title", "brand", "category", "description")
#: Words as written (lower-cased, ASCII-folded, not stemmed) of titles, brands and categories: the
#: vocabulary spelling suggestions come from, so a suggestion is a word the catalog holds.
SPELL_FIELD = "spell"
SPELL_ANALYZER = "words"
#: Normalised identifiers (external id, source ids, model numbers; ``SearchDocument.identifiers``).
IDENTIFIER_FIELD = "identifier"
#: Longest token kept, in UTF-8 bytes (tantivy's ``remove_long`` counts bytes): 40 Latin letters,
#: 13 Devanagari or Chinese characters. Longer "words" are base64 blobs or URLs, not product terms.
MAX_TOKEN_CHARS = 40
#: Writer heap (bytes). tantivy needs >= 3 MB per thread; 50 MB with one thread indexes the
#: 1,050-product Flipkart catalog in one segment and keeps a worker's RSS small.
WRITER_HEAP_BYTES = 50_000_000
#: A bulk build (a rebuild's new index, read by no one else until the swap) keeps one writer open
#: with this heap on every core and commits every ``BULK_COMMIT_DOCS`` documents (and at the
#: end): measured in bench/RESULTS.md "Scale" against a commit per batch.
BULK_HEAP_BYTES = 400_000_000
BULK_COMMIT_DOCS = 200_000
#: A word: a run of letters, combining marks and digits (Unicode classes L, M, N). For Latin text
#: this is what tantivy's ``simple`` tokenizer keeps; unlike it, Devanagari words stay whole with
#: their vowel signs, viramas and nuktas ("स्कूल", not "स" + "कूल"). Chinese runs are split into
#: words before analysis (:func:`search.backends._segment.segment`).
WORD_PATTERN = r"[\p{L}\p{M}\p{N}]+"


class ShopAnalyzer:
    """The BM25 analyzer of every text field: segmentation, then tantivy's analyzer.

    Lower-case, ASCII-fold, drop English, Chinese and Hindi stop words
    (:data:`search.backends._segment.OTHER_STOP_WORDS`), stem English (Porter); Chinese runs are
    segmented into words by jieba first, Devanagari words kept whole. The English stemmer leaves
    non-Latin words as they are (its suffix rules are Latin letters).

    Attributes:
        tantivy: the analyzer registered with the index (it never sees unsegmented Chinese:
            documents and queries pass through :meth:`document_text` / :meth:`analyze`).
    """

    def __init__(self):
        self.tantivy = (
            tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(WORD_PATTERN))
            .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .filter(tantivy.Filter.stopword("english"))
            .filter(tantivy.Filter.custom_stopword(list(OTHER_STOP_WORDS)))
            .filter(tantivy.Filter.stemmer("english"))
            .build()
        )

    @staticmethod
    def document_text(text: str) -> str:
        """A product field as the index reads it (Chinese split into words, search mode)."""
        return segment(text or "", document=True)

    def analyze(self, text: str) -> list[str]:
        """The terms of a query ``text``, in order (repeats kept); ``[]`` for only stop words."""
        return self.tantivy.analyze(segment(text or ""))


def build_analyzer() -> ShopAnalyzer:
    """The BM25 analyzer (:class:`ShopAnalyzer`)."""
    return ShopAnalyzer()


def build_word_analyzer() -> tantivy.TextAnalyzer:
    """Lower-case and ASCII-fold only: the words of the spelling vocabulary as shoppers type them."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_unsigned_field("id", stored=True, indexed=True, fast=True)
    for name in TEXT_FIELDS:
        sb.add_text_field(name, tokenizer_name=ANALYZER)
    sb.add_text_field(SPELL_FIELD, tokenizer_name=SPELL_ANALYZER)
    sb.add_text_field(IDENTIFIER_FIELD, tokenizer_name="raw")
    sb.add_text_field("brand_key", tokenizer_name="raw", fast=True)
    sb.add_text_field("category_key", tokenizer_name="raw")  # the path and each ancestor path
    sb.add_float_field("price", indexed=True, fast=True)
    sb.add_float_field("rating", fast=True)
    return sb.build()


class BM25Index:
    """tantivy index in ``path``.

    Args:
        path: directory of the index (created if missing).
        field_boosts: field -> boost for BM25 (settings ``SEARCH_FIELD_BOOSTS``); ``title_phrase``
            boosts titles holding a query of two or more words as a phrase (0 or absent: off).
    """

    def __init__(self, path: Path, field_boosts: dict[str, float], *, bulk: bool = False):
        path.mkdir(parents=True, exist_ok=True)
        self.bulk = bulk
        self._writer: tantivy.IndexWriter | None = None
        self._uncommitted = 0
        self.schema = build_schema()
        #: False for an index written before the spelling and identifier fields existed: it is
        #: opened with its own schema and serves BM25 as before until ``manage.py reindex``.
        self.has_lexical_fields = True
        try:
            self.index = tantivy.Index(self.schema, path=str(path), reuse=True)
        except ValueError as exc:
            if "schema does not match" not in str(exc):
                raise
            self.index = tantivy.Index.open(str(path))
            self.schema = self.index.schema
            self.has_lexical_fields = False
        self.analyzer = build_analyzer()
        self.index.register_tokenizer(ANALYZER, self.analyzer.tantivy)
        self.index.register_tokenizer(SPELL_ANALYZER, build_word_analyzer())
        self.boosts = {f: float(field_boosts.get(f, 1.0)) for f in TEXT_FIELDS}
        self.phrase_boost = float(field_boosts.get("title_phrase", 0.0))

    # -- writes (caller holds the engine's write lock) -----------------------------------------
    def write(self, upserts: Sequence[SearchDocument], deletes: Sequence[int]) -> None:
        if self.bulk:
            if self._writer is None:
                self._writer = self.index.writer(heap_size=BULK_HEAP_BYTES, num_threads=0)
            try:
                self._add(self._writer, upserts, deletes)
            except BaseException:
                self._writer.rollback()
                raise
            self._uncommitted += len(upserts) + len(deletes)
            if self._uncommitted >= BULK_COMMIT_DOCS:
                self._commit()
            return
        writer = self.index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
        try:
            self._add(writer, upserts, deletes)
            writer.commit()
            writer.wait_merging_threads()
        except BaseException:
            writer.rollback()
            raise
        self.index.reload()

    def _add(self, writer: tantivy.IndexWriter, upserts: Sequence[SearchDocument], deletes: Sequence[int]) -> None:
        doomed = sorted({int(pid) for pid in deletes} | {int(d.id) for d in upserts})
        if doomed:
            # Not delete_documents_by_term: tantivy-py builds a signed-int term for a Python
            # int, which never matches this unsigned field, so upserts duplicated documents.
            writer.delete_documents_by_query(tantivy.Query.term_set_query(self.schema, "id", doomed))
        for doc in upserts:
            writer.add_document(self._to_tantivy(doc, lexical=self.has_lexical_fields))

    def _commit(self) -> None:
        if self._writer is not None and self._uncommitted:
            self._writer.commit()
            self._uncommitted = 0
            self.index.reload()

    def finish(self) -> None:
        """End a bulk build: commit, wait for merges, and write like any index from now on."""
        if self._writer is not None:
            self._commit()
            self._writer.wait_merging_threads()
            self._writer = None
            self.index.reload()
        self.bulk = False

    def abort(self) -> None:
        """Drop a bulk build's uncommitted documents and stop its writer's threads, so that nothing
        writes into the folder after the caller deletes it."""
        if self._writer is not None:
            self._writer.rollback()
            self._writer.wait_merging_threads()
            self._writer = None
            self._uncommitted = 0

    def clear(self) -> None:
        if self._writer is not None:
            self._writer.delete_all_documents()
            self._uncommitted = 1
            self._commit()
            return
        writer = self.index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
        writer.delete_all_documents()
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()

    @staticmethod
    def _to_tantivy(doc: SearchDocument, *, lexical: bool = True) -> tantivy.Document:
        d = tantivy.Document()
        if lexical:
            d.add_text(SPELL_FIELD, " ".join([doc.title or "", doc.brand or "", *doc.category_path]))
            for key in dict.fromkeys(doc.identifiers):
                d.add_text(IDENTIFIER_FIELD, key)
        d.add_unsigned("id", int(doc.id))
        words = ShopAnalyzer.document_text
        d.add_text("title", words(doc.title))
        d.add_text("brand", words(doc.brand))
        d.add_text("category", words(" ".join(doc.category_path)))
        d.add_text("description", words(doc.description))
        d.add_float("rating", float(doc.rating or 0.0))
        if doc.brand:
            d.add_text("brand_key", doc.brand)
        for i in range(len(doc.category_path)):  # the path and each ancestor, for prefix filters
            d.add_text("category_key", " > ".join(doc.category_path[: i + 1]))
        if doc.price is not None:
            d.add_float("price", float(doc.price))
        return d

    # -- reads -----------------------------------------------------------------------------------
    def _searcher(self) -> tantivy.Searcher:
        if self._uncommitted:  # a bulk build read before its next commit (a rebuild's catch-up)
            self._commit()
        return self.index.searcher()

    def reload(self) -> None:
        self._commit()
        self.index.reload()

    def terms(self, text: str) -> list[str]:
        """The analysed terms of ``text`` (what BM25 will match)."""
        return self.analyzer.analyze(text or "")

    def search(self, query: str | None, filters: SearchFilters | None, limit: int) -> list[Hit]:
        searcher = self._searcher()
        filter_q = self.filter_query(filters)
        if query is None:
            q = filter_q or tantivy.Query.all_query()
            result = searcher.search(q, limit=limit, order_by_field="rating")
            ids = searcher.fast_field_values("id", [addr for _, addr in result.hits])
            return [Hit(int(i), 0.0) for i in ids]
        terms = list(dict.fromkeys(self.terms(query)))
        if not terms:
            return []
        per_term = [
            (tantivy.Occur.Should, tantivy.Query.boolean_query([
                (tantivy.Occur.Should, tantivy.Query.boost_query(tantivy.Query.term_query(self.schema, f, t), b))
                for f, b in self.boosts.items()
            ]))
            for t in terms
        ]
        if len(terms) > 1 and self.phrase_boost > 0:
            phrase = tantivy.Query.phrase_query(self.schema, "title", terms)
            per_term.append((tantivy.Occur.Should, tantivy.Query.boost_query(phrase, self.phrase_boost)))
        q = tantivy.Query.boolean_query(per_term)
        if filter_q is not None:
            q = tantivy.Query.boolean_query([(tantivy.Occur.Must, q), (tantivy.Occur.Must, tantivy.Query.const_score_query(filter_q, 0.0))])
        result = searcher.search(q, limit=limit)
        ids = [int(i) for i in searcher.fast_field_values("id", [addr for _, addr in result.hits])]
        coverage = self._coverage(searcher, terms, ids)
        return [Hit(i, float(score), coverage.get(i, 0.0)) for i, (score, _) in zip(ids, result.hits, strict=True)]

    def _coverage(self, searcher: tantivy.Searcher, terms: list[str], ids: list[int]) -> dict[int, float]:
        """Id -> share of ``terms`` (distinct, analysed) the document holds in any text field, for ``ids``.

        One more search over those ids only: each term is a constant-score clause worth 1, so a
        document's score is the number of terms it holds.
        """
        if not ids:
            return {}
        if len(terms) == 1:  # every BM25 hit holds the one term
            return dict.fromkeys(ids, 1.0)
        held = tantivy.Query.boolean_query([
            (tantivy.Occur.Should, tantivy.Query.const_score_query(tantivy.Query.boolean_query([
                (tantivy.Occur.Should, tantivy.Query.term_query(self.schema, f, t)) for f in TEXT_FIELDS
            ]), 1.0))
            for t in terms
        ])
        only = tantivy.Query.const_score_query(tantivy.Query.term_set_query(self.schema, "id", ids), 0.0)
        result = searcher.search(tantivy.Query.boolean_query([(tantivy.Occur.Must, held), (tantivy.Occur.Must, only)]), limit=len(ids))
        found = searcher.fast_field_values("id", [addr for _, addr in result.hits])
        n = float(len(terms))
        return {int(i): min(1.0, round(float(score)) / n) for i, (score, _) in zip(found, result.hits, strict=True)}

    def vocabulary(self) -> dict[str, int]:
        """Every word of titles, brands and categories as written -> documents holding it (deleted
        documents count until their segment is merged). Empty for an index without the field."""
        if not self.has_lexical_fields:
            return {}
        return dict(self._searcher().terms_with_prefix(SPELL_FIELD, ""))

    def known_words(self, words: Sequence[str]) -> set[str]:
        """The ``words`` some document holds in a BM25 field (compared after analysis, so
        "towels" is known when a title says "towel"); stop words count as known."""
        searcher = self._searcher()
        known = set()
        for word in words:
            terms = self.terms(word)
            if not terms or all(any(searcher.doc_freq(f, t) for f in TEXT_FIELDS) for t in terms):
                known.add(word)
        return known

    def count_holding_all(self, words: Sequence[str]) -> int:
        """Documents holding every one of ``words`` in some BM25 field (after analysis)."""
        clauses = []
        for word in words:
            for term in self.terms(word):
                clauses.append((tantivy.Occur.Must, tantivy.Query.boolean_query([
                    (tantivy.Occur.Should, tantivy.Query.term_query(self.schema, f, term)) for f in TEXT_FIELDS])))
        if not clauses:
            return 0
        return self._searcher().search(tantivy.Query.boolean_query(clauses), limit=1, count=True).count

    def search_identifiers(self, keys: Sequence[str], filters: SearchFilters | None, limit: int) -> list[Hit]:
        """Documents carrying any of the normalised identifier ``keys`` exactly (score 1.0, id order)."""
        keys = [k for k in dict.fromkeys(keys) if k]
        if not keys or not self.has_lexical_fields:
            return []
        q = tantivy.Query.term_set_query(self.schema, IDENTIFIER_FIELD, keys)
        filter_q = self.filter_query(filters)
        if filter_q is not None:
            q = tantivy.Query.boolean_query([(tantivy.Occur.Must, q), (tantivy.Occur.Must, filter_q)])
        searcher = self._searcher()
        result = searcher.search(q, limit=limit, count=False)
        ids = sorted(int(i) for i in searcher.fast_field_values("id", [a for _, a in result.hits]))
        return [Hit(i, 1.0) for i in ids]

    def filtered_ids(self, filters: SearchFilters, limit: int) -> list[int]:
        """Ids of every document passing ``filters`` (up to ``limit``)."""
        searcher = self._searcher()
        q = self.filter_query(filters) or tantivy.Query.all_query()
        result = searcher.search(q, limit=limit, count=False)
        return [int(i) for i in searcher.fast_field_values("id", [a for _, a in result.hits])]

    def filter_query(self, filters: SearchFilters | None) -> tantivy.Query | None:
        if filters is None or filters.is_empty:
            return None
        clauses = []
        if filters.category_parts:
            clauses.append(tantivy.Query.term_query(self.schema, "category_key", " > ".join(filters.category_parts)))
        if filters.brands:
            clauses.append(tantivy.Query.term_set_query(self.schema, "brand_key", list(filters.brands)))
        if filters.price_min is not None or filters.price_max is not None:
            clauses.append(tantivy.Query.range_query(
                self.schema, "price", tantivy.FieldType.Float,
                lower_bound=None if filters.price_min is None else float(filters.price_min),
                upper_bound=None if filters.price_max is None else float(filters.price_max),
            ))
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, c) for c in clauses])

    def count(self) -> int:
        return self._searcher().num_docs

    def ids(self) -> set[int]:
        searcher = self._searcher()
        n = searcher.num_docs
        if not n:
            return set()
        result = searcher.search(tantivy.Query.all_query(), limit=n, count=False)
        return {int(i) for i in searcher.fast_field_values("id", [a for _, a in result.hits])}
