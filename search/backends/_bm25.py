"""BM25 half of the embedded engine: a tantivy index (one writer, many reader processes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tantivy

from search.backends.base import Hit, SearchDocument, SearchFilters

ANALYZER = "en_shop"
TEXT_FIELDS = ("title", "brand", "category", "description")
#: Longest token kept (chars). Longer "words" are base64 blobs or URLs, not product terms.
MAX_TOKEN_CHARS = 40
#: Writer heap (bytes). tantivy needs >= 3 MB per thread; 50 MB with one thread indexes the
#: 1,050-product Flipkart catalog in one segment and keeps a worker's RSS small.
WRITER_HEAP_BYTES = 50_000_000
#: A bulk build (a rebuild's new index, read by no one else until the swap) keeps one writer open
#: with this heap on every core and commits every ``BULK_COMMIT_DOCS`` documents (and at the
#: end): measured in bench/RESULTS.md "Scale" against a commit per batch.
BULK_HEAP_BYTES = 400_000_000
BULK_COMMIT_DOCS = 200_000


def build_analyzer() -> tantivy.TextAnalyzer:
    """Lower-case, ASCII-fold, drop English stop words, Porter-stem (English)."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_unsigned_field("id", stored=True, indexed=True, fast=True)
    for name in TEXT_FIELDS:
        sb.add_text_field(name, tokenizer_name=ANALYZER)
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
        self.index = tantivy.Index(self.schema, path=str(path), reuse=True)
        self.analyzer = build_analyzer()
        self.index.register_tokenizer(ANALYZER, self.analyzer)
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
        to_doc = self._to_tantivy
        for doc in upserts:
            writer.add_document(to_doc(doc))

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
    def _to_tantivy(doc: SearchDocument) -> tantivy.Document:
        d = tantivy.Document()
        d.add_unsigned("id", int(doc.id))
        d.add_text("title", doc.title or "")
        d.add_text("brand", doc.brand or "")
        d.add_text("category", " ".join(doc.category_path))
        d.add_text("description", doc.description or "")
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
