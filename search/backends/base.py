"""The search backend interface. Every engine implements it and passes the same contract suite.

Backends are chosen by settings, like Django's ``CACHES``::

    SEARCH_BACKENDS = {"default": {"BACKEND": "search.backends.embedded", "INDEX_DIR": ...}}

Each backend module ends with ``SearchBackend = <class>``. See :func:`search.backends.get_backend`.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

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
        popularity: click prior in [0, 1] (0 without clicks).
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
    popularity: float = 0.0
    merchant: str = ""
    identifiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchFilters:
    """Filters applied inside every retriever (never as a post-filter).

    Attributes:
        category: a category path, root first, joined with ``" > "``; matches the category and
            everything below it.
        brands: brand names; a product matches any of them.
        price_min, price_max: inclusive bounds in the catalog currency (INR).
    """

    category: str | None = None
    brands: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.category or self.brands or self.price_min is not None or self.price_max is not None)

    @property
    def category_parts(self) -> list[str]:
        return [p.strip() for p in (self.category or "").split(" > ") if p.strip()]


@dataclass(frozen=True)
class Hit:
    """One result of one retriever: ``score`` is the engine's own (BM25, or cosine for kNN)."""

    id: int
    score: float


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
    """A result after rank fusion (``search.hybrid.fusion``, or an engine's ``search_hybrid``):
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
    """

    def __init__(self, params: dict, vector_dims: dict[str, int]):
        self.params = params
        self.vector_dims = dict(vector_dims)

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

    def get_vectors(self, field: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors by id (for "looks similar" on the product page). Optional."""
        raise NotImplementedError(f"{type(self).__name__} does not return stored vectors")

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
