"""The shapes of a judged data set: products, queries, graded relevance (qrels), training pairs.

Kept apart from the loaders (:mod:`search.evaluation.datasets`, :mod:`search.evaluation.fashion_text`)
so that every loader builds on them without importing another loader.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from search.documents import compose_document_text

#: Fixed seed of every random choice in the harness (splits, query samples).
SEED = 0


class DatasetError(ValueError):
    """A data set folder is missing a file or holds one in the wrong format; the message says which."""


@dataclass
class EvalProduct:
    """One catalog entry. ``id`` is a small positive int (the engine's document id)."""

    id: int
    external_id: str
    title: str = ""
    description: str = ""
    brand: str = ""
    category_path: list[str] = field(default_factory=list)
    image_path: Path | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def encoder_text(self) -> str:
        """What the text encoder reads, composed exactly as for a stored product."""
        return compose_document_text(title=self.title, brand=self.brand, category_path=self.category_path, description=self.description)


@dataclass
class EvalQuery:
    """A judged query: words (``text``), a photo (``image_path``), or both."""

    id: str
    text: str = ""
    image_path: Path | None = None


@dataclass
class TrainingPairs:
    """(photo, text) pairs a fusion head may train on; ``group`` marks pairs with the same text."""

    image_paths: list[Path]
    texts: list[str]
    groups: list[int]


@dataclass
class Dataset:
    """A catalog, its queries and their graded judgments.

    Attributes:
        qrels: query id -> product id -> gain (0 = irrelevant); products not listed have gain 0.
        index_text: whether products are indexed with their words (False: photos only).
        index_photos: whether products are indexed with their photos.
        training: pairs a fusion head may train on without seeing an evaluated product.
        notes: facts about how the set was built, printed with the results.
        groups: query id -> group (e.g. its language); when set, each group's scores are
            reported too (``search.evaluation.systems``).
    """

    name: str
    source: Path
    products: list[EvalProduct]
    queries: list[EvalQuery]
    qrels: dict[str, dict[int, float]]
    index_text: bool = True
    index_photos: bool = True
    training: TrainingPairs | None = None
    notes: list[str] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)

    def limited(self, n: int) -> Dataset:
        """The same set with ``n`` queries (a seeded sample, in the original order).

        CrowdFlower's catalog is the union of the judged products, so it shrinks to the products
        judged for the kept queries, as the protocol builds it; the other catalogs stay whole.
        """
        if n <= 0 or n >= len(self.queries):
            return self
        keep = sorted(random.Random(SEED).sample(range(len(self.queries)), n))
        queries = [self.queries[i] for i in keep]
        qrels = {q.id: self.qrels.get(q.id, {}) for q in queries}
        products = self.products
        if self.name == "crowdflower":
            judged = {pid for gains in qrels.values() for pid in gains}
            products = [p for p in self.products if p.id in judged]
        note = f"Limited to {n} of {len(self.queries)} queries (seed {SEED}); catalog {len(products)} of {len(self.products)} products."
        return replace(self, products=products, queries=queries, qrels=qrels, notes=[*self.notes, note])
