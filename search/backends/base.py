"""The search backend interface. Every engine implements it and passes the same contract suite.

Backends are chosen by settings, like Django's ``CACHES``::

    SEARCH_BACKENDS = {"default": {"BACKEND": "search.backends.embedded", "INDEX_DIR": ...}}

Each backend module ends with ``SearchBackend = <class>``. See :func:`search.backends.get_backend`.

What every engine must do is abstract here; what only some engines can do is declared as a
``supports_*`` class attribute (Wagtail's pattern), and the base method raises
:class:`UnsupportedSearchFeature` naming the engine and the feature. Callers read the attribute,
never ``getattr``. The shared contract suite (``tests/backends/contract.py``) covers every
abstract method and every declared capability.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from search.backends.retrieval import FusionRequest, FusionSupport, Retrieval, SearchFilters

#: Vector fields every backend indexes, with their role. Dimensions come from the encoders.
VECTOR_FIELDS = ("text", "image", "fused")


@dataclass
class SearchDocument:
    """One product as the search engines see it.

    Attributes:
        id: the product's primary key.
        category_path: root first, e.g. ``["Home Furnishing", "Curtains"]``.
        price: selling price in the catalog currency (INR), or ``None``.
        vectors: field name -> 1-d float32 L2-normalised vector; a missing field means the
            product has no such vector (e.g. no photo means no ``image`` vector).
        merchant: the seller's name or code ("" for the shop's own catalog).
        identifiers: normalised keys (``search.identifiers.identifier_key``) of the ids a shopper
            may type: the external id, the source's own ids, model numbers and style codes.
    """

    id: int
    external_id: str = ""
    title: str = ""
    brand: str = ""
    category_path: list[str] = field(default_factory=list)
    description: str = ""
    price: float | None = None
    rating: float | None = None
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    merchant: str = ""
    identifiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    """One result of one retriever: ``score`` is the engine's own (BM25, or cosine for kNN).

    ``coverage`` (BM25 hits, where the engine reports it): the share of the query's distinct
    analysed terms the product holds in any text field, in [0, 1]; ``None`` when unknown. The
    membership stage (:mod:`search.hybrid.floor`) reads it; it takes no part in equality.
    """

    id: int
    score: float
    coverage: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ScorePart:
    """One retriever's contribution to a result.

    Attributes:
        retriever: e.g. ``"bm25"``, ``"text_knn"``.
        raw: the retriever's own score (BM25 score, cosine similarity).
        rank: 1-based rank in that retriever's list.
        contribution: what it added to the fused score (weight already applied).
    """

    retriever: str
    raw: float
    rank: int
    contribution: float


@dataclass
class FusedResult:
    """A result after rank fusion (``search.hybrid.fusion``, or an engine's ``search_fused``):
    ``score`` is the sum of ``parts``' contributions."""

    id: int
    score: float
    parts: list[ScorePart] = field(default_factory=list)

    def explain(self) -> dict:
        """``{"score": ..., "<retriever>": {"raw", "rank", "contribution"}, ...}`` for display and JSON."""
        out: dict = {"score": round(self.score, 6)}
        for p in self.parts:
            out[p.retriever] = {"raw": round(p.raw, 6), "rank": p.rank, "contribution": round(p.contribution, 6)}
        return out


class SearchBackendError(Exception):
    """The engine failed (unreachable, corrupt index, rejected request)."""


class SearchUnavailable(SearchBackendError):
    """The engine cannot answer right now; the caller should show a 'try again' message."""


class ServerFusionUnavailable(SearchUnavailable):
    """The engine cannot fuse on its side right now but still answers single retrievals (e.g. from
    a fallback engine): ``search.hybrid`` then asks for the lists and fuses them itself."""


class UnsupportedSearchFeature(NotImplementedError):
    """A backend was asked for a feature it does not declare (its ``supports_<feature>`` is False).

    Attributes:
        backend: the backend's class name.
        feature: the capability, e.g. ``"highlight"``.
    """

    def __init__(self, backend: BaseSearchBackend, feature: str, method: str):
        self.backend = type(backend).__name__
        self.feature = feature
        super().__init__(
            f"The {self.backend} search backend ({type(backend).__module__}) does not support {feature.replace('_', ' ')}: "
            f"check `backend.supports_{feature}` before calling `{method}()`, or configure an engine that has it in SEARCH_BACKENDS."
        )


class DocumentsRejected(SearchBackendError):
    """The engine refused some documents of a batch for good (a value its mapping cannot take);
    every other document of the batch was written.

    Raised by :meth:`BaseSearchBackend.add_bulk`; ``search.services.products_index`` records each
    reason on its product. Transient refusals (a busy cluster) raise :class:`SearchUnavailable`.

    Attributes:
        rejected: product id -> why it was refused, naming the field when the engine did.
        indexed: ids of the batch that were written.
    """

    def __init__(self, rejected: dict[int, str], indexed: Sequence[int] = ()):
        self.rejected = dict(rejected)
        self.indexed = list(indexed)
        sample = "; ".join(f"{pid}: {why}" for pid, why in list(self.rejected.items())[:3])
        super().__init__(f"{len(self.rejected)} document(s) rejected ({sample})")


class BaseSearchBackend(abc.ABC):
    """Interface of a product search engine.

    Args:
        params: the backend's entry in ``SEARCH_BACKENDS``.
        vector_dims: vector field name -> dimension, e.g. ``{"text": 384, "image": 1280, "fused": 384}``,
            for new indexes; an existing index keeps the dimensions it was built with.
        space: the fusion space the fused vectors of a first index are made in (``{"name",
            "version", "dim"}``), recorded with that index (see :meth:`index_space`); ``None``
            records nothing. ``search.backends.get_backend`` passes the active one.

    Capabilities (class attributes; False here, each method below raises
    :class:`UnsupportedSearchFeature` unless a backend declares and implements it):

    * ``supports_server_fusion``: :meth:`fusion_support` and :meth:`search_fused` (BM25 and kNN
      fused into one ranking inside the engine, in one request);
    * ``supports_multi_search``: :meth:`search_many` (several retrievals in one round trip);
    * ``supports_term_analysis``: :meth:`terms` (the analysed BM25 terms of a text);
    * ``supports_facets``: :meth:`facets` (category, brand and price counts);
    * ``supports_highlight``: :meth:`highlights` (query terms marked in titles and descriptions);
    * ``supports_explain``: :meth:`explain` (the engine's own account of a BM25 score);
    * ``reports_term_coverage``: :meth:`search_text` hits carry ``Hit.coverage`` (``None`` otherwise).
    """

    supports_server_fusion: bool = False
    supports_multi_search: bool = False
    supports_term_analysis: bool = False
    supports_facets: bool = False
    supports_highlight: bool = False
    supports_explain: bool = False
    reports_term_coverage: bool = False

    def __init__(self, params: dict, vector_dims: dict[str, int], *, space: dict | None = None):
        self.params = params
        self.vector_dims = dict(vector_dims)
        self.initial_space = dict(space) if space else None

    # -- writing -------------------------------------------------------------------------------
    @abc.abstractmethod
    def reset_index(self) -> None:
        """Drop every document and start an empty index."""

    @abc.abstractmethod
    def add_bulk(self, docs: Sequence[SearchDocument]) -> None:
        """Insert or replace documents (by id). Visible to searches after :meth:`refresh`.

        Raises:
            DocumentsRejected: some documents were refused for good; the others were written.
            SearchUnavailable: a transient failure; retrying the whole batch is safe.
        """

    @abc.abstractmethod
    def delete(self, ids: Sequence[int]) -> None:
        """Remove documents by id; unknown ids are ignored."""

    @abc.abstractmethod
    def refresh(self) -> None:
        """Make every write so far visible to searches in this process."""

    @abc.abstractmethod
    @contextlib.contextmanager
    def rebuild(
        self,
        *,
        before_swap: Callable[[BaseSearchBackend], None] | None = None,
        keep: int | None = None,
        vector_dims: dict[str, int] | None = None,
        space: dict | None = None,
    ) -> Iterator[BaseSearchBackend]:
        """Build a new index beside the live one; swap it in atomically when the block succeeds.

        Yields a backend that writes into the new index. Searches keep answering from the live
        index during the build. After the block, ``before_swap(new)`` runs while writes to the
        live index are blocked (to catch up with them), then the alias swaps. On an exception
        (in the block or in ``before_swap``) the new index is discarded and the live one stays.
        ``keep`` previous builds are kept for rollback (``None``: the backend's default).

        Args:
            before_swap: see above.
            keep: see above.
            vector_dims: dimensions of the new index's vector fields (default: this backend's);
                a new fusion head changes the fused field's.
            space: the fusion space the new index's fused vectors are made in
                (``{"name", "version", "dim"}``), recorded with the index (see :meth:`index_space`).
        """

    def index_space(self) -> dict | None:
        """The fusion space recorded with the live index at build time (``{"name", "version",
        "dim"}``), or ``None`` when the index has no record. Queries and writes to this index
        must make fused vectors in that space (see ``search.embedding.spaces.space_for_index``)."""
        return None

    def served_vector_fields(self) -> frozenset[str]:
        """The vector fields the live index can search: those it was built with. An index built
        before an encoder was added lacks that encoder's field until ``manage.py reindex``; the
        query pipeline leaves its kNN retriever out meanwhile."""
        return frozenset(self.vector_dims)

    # -- reading -------------------------------------------------------------------------------
    @abc.abstractmethod
    def search_text(self, query: str | None, *, filters: SearchFilters | None = None, limit: int = 100) -> list[Hit]:
        """BM25 over title, brand, category and description with field boosts.

        ``query=None`` matches every document that passes the filters (score 0), best rated first.
        User text is analysed into terms, never parsed as query syntax.
        """

    @abc.abstractmethod
    def search_vector(self, field: str, vector: np.ndarray, *, filters: SearchFilters | None = None, k: int = 100) -> list[Hit]:
        """kNN by cosine similarity on a vector field, with filters applied inside the search.

        Raises:
            ValueError: unknown field, or a vector of the wrong dimension.
        """

    # -- words and identifiers (optional: an engine without them never corrects or pins) ----------
    def known_words(self, words: Sequence[str]) -> set[str]:
        """The ``words`` that some document holds in a BM25 field (after analysis)."""
        return set(words)

    def spelling_suggestions(self, words: Sequence[str], *, context: Sequence[str] = ()) -> dict[str, str]:
        """Unknown word -> the catalog word it most likely misspells (edit distance 1 from 4
        characters, 2 from 8, as Algolia's typo tolerance; among the closest, the one most often
        found with the ``context`` words, then the most frequent). Words without one are left out."""
        return {}

    def search_identifiers(self, keys: Sequence[str], *, filters: SearchFilters | None = None, limit: int = 20) -> list[Hit]:
        """Documents whose ``identifiers`` hold one of ``keys`` exactly (score 1.0)."""
        return []

    @abc.abstractmethod
    def count(self) -> int:
        """Number of documents in the live index."""

    @abc.abstractmethod
    def ids(self) -> set[int]:
        """Ids of every document in the live index."""

    @abc.abstractmethod
    def get_vectors(self, field: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors by id (for "looks similar" on the product page).

        Returns:
            id -> 1-d float32 vector of ``field``; ids unknown or without that vector are left out.

        Raises:
            ValueError: unknown field.
        """

    # -- capabilities (see the class docstring) ------------------------------------------------
    def search_many(self, retrievals: Sequence[Retrieval]) -> list[list[Hit]]:
        """Run several retrievals in one round trip; the lists are those of :meth:`search_text`
        (``TextRetrieval``) and :meth:`search_vector` (``VectorRetrieval``), in order.

        Raises:
            UnsupportedSearchFeature: ``supports_multi_search`` is False.
            ValueError, SearchUnavailable: as the single searches.
        """
        raise UnsupportedSearchFeature(self, "multi_search", "search_many")

    def fusion_support(self) -> FusionSupport:
        """Which fusion rules :meth:`search_fused` can run now (may depend on the server's version).

        Raises:
            UnsupportedSearchFeature: ``supports_server_fusion`` is False.
            SearchUnavailable: the engine cannot say now.
        """
        raise UnsupportedSearchFeature(self, "server_fusion", "fusion_support")

    def search_fused(self, request: FusionRequest) -> list[FusedResult]:
        """Run a fusion rule compiled by ``search.hybrid`` inside the engine, in one request.

        Returns:
            At most ``request.window`` results, best first; each explanation holds the fused score.

        Raises:
            UnsupportedSearchFeature: ``supports_server_fusion`` is False.
            ValueError: a method or a shape :meth:`fusion_support` does not list.
            ServerFusionUnavailable: the engine cannot fuse now but answers single retrievals.
            SearchUnavailable: the engine cannot answer.
        """
        raise UnsupportedSearchFeature(self, "server_fusion", "search_fused")

    def terms(self, text: str) -> list[str]:
        """The analysed BM25 terms of ``text`` (lower-cased, stop words dropped), in order.

        Raises:
            UnsupportedSearchFeature: ``supports_term_analysis`` is False.
        """
        raise UnsupportedSearchFeature(self, "term_analysis", "terms")

    def facets(self, query: str | None, *, filters: SearchFilters | None = None, size: int = 20) -> dict[str, list[tuple[str, int]]]:
        """Facet counts over every document matching ``query`` (BM25) and ``filters``.

        Returns:
            ``{"category": [(path, count), ...], "brand": [...], "price": [("500-1000", count), ...]}``;
            categories one level below the category filter, empty price bands left out.

        Raises:
            UnsupportedSearchFeature: ``supports_facets`` is False.
        """
        raise UnsupportedSearchFeature(self, "facets", "facets")

    def highlights(self, query: str, ids: Sequence[int]) -> dict[int, dict[str, list[str]]]:
        """HTML-escaped title and description fragments of ``ids`` with ``query``'s terms in ``<mark>``.

        Raises:
            UnsupportedSearchFeature: ``supports_highlight`` is False.
        """
        raise UnsupportedSearchFeature(self, "highlight", "highlights")

    def explain(self, query: str, product_id: int) -> dict:
        """The engine's explanation of one product's BM25 score for ``query`` (``value``, ``description``, ``details``).

        Raises:
            UnsupportedSearchFeature: ``supports_explain`` is False.
        """
        raise UnsupportedSearchFeature(self, "explain", "explain")

    def describe(self) -> dict:
        """Facts for ``search_status`` (engine, index name, sizes)."""
        return {"backend": type(self).__module__}

    def _check_vector(self, field: str, vector: np.ndarray) -> np.ndarray:
        if field not in self.vector_dims:
            raise ValueError(f"Unknown vector field {field!r}; valid fields: {', '.join(self.vector_dims)}")
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.vector_dims[field]:
            raise ValueError(
                f"Vector for field {field!r} has {vector.shape[0]} dimensions; the index expects {self.vector_dims[field]}"
            )
        return vector
