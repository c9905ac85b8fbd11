"""Photo + words that compose: the words narrow what the photo finds (``SEARCH_COMPOSE="facets"``).

A shopper's photo of a product plus a few words ("red", "for women", "casual") should return
products like the photo *with* what the words say. Mixing the words into one fused vector
(``SEARCH_COMPOSE="fused"``, the earlier behaviour) barely composes: on the fashion check set
(``manage.py evaluate fashion_compose``) it is 1.1x the photo alone. Here the words are a
constraint and the photo a ranking:

1. Candidates: the photo alone in the fusion space (kNN on the ``fused`` field with the photo's
   projected side), :data:`COMPOSE_CANDIDATES` of them.
2. Words -> facets: the words are matched against the candidates' own facet values
   (``SEARCH_COMPOSE_FACETS``: specification keys such as ``baseColour``, ``gender``,
   ``usage``), longest value first, on word boundaries. Words that name no value (a brand, a
   material, a model name) go to BM25: when BM25 finds them, they count as a constraint too.
   Both are reported back (``ComposedRanking.named`` / ``unmatched``).
3. The photo votes: its :data:`VOTE_K` nearest candidates (cosine-weighted) vote for a category
   and a gender; a gender the words name overrides the gender vote.
4. Score = photo cosine + ``FACET_BOOST`` x [matches every facet value the words name, and is a
   BM25 hit of the other words when BM25 finds any] + ``VOTE_BOOST`` x [in the voted category
   (and gender)]. Results are the candidates that match the words (all candidates when none
   does or the words name nothing).

Measured on the fashion check set (``evaluate fashion_compose``, 391 composed queries): precision@10
0.546 = 82 % of the best possible, 1.49x the better of photo alone (0.367) and words alone (0.040)
with ``FUSION_WEIGHTS`` 0.8 / 0.2; 0.538 = 81 % and 1.56x with 0.5 / 0.5. The boosts 10 and 1
and ``VOTE_K`` 5 were chosen on a dev half of the queries. The design follows the
constraint-plus-ranking view of composed image retrieval (e.g. Vo et al. 2019, "Composing Text
and Image for Image Retrieval"), with the words mapped to the catalog's own facets.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from search.backends.base import FusedResult, Hit, ScorePart

logger = logging.getLogger(__name__)

#: Values of ``SEARCH_COMPOSE``: ``facets`` (this module) or ``fused`` (one fused photo+words vector, all retrievers).
COMPOSE_MODES = ("facets", "fused")
#: Added to a product that has every facet value the words name: larger than any cosine, so it acts
#: as a filter that never empties the page (dev half of the fashion check set: 0.1, 0.3, 1, 10 -> 10).
FACET_BOOST = 10.0
#: Added to a product in the photo's voted category (and gender): about a cosine's whole range (dev: 0-1 -> 1).
VOTE_BOOST = 1.0
#: Nearest candidates that vote for a category and a gender (dev: 5, 10, 20, 40 -> 5).
VOTE_K = 5
#: Photo candidates re-scored per query.
COMPOSE_CANDIDATES = 1000
#: Facet name of the gender: a gender the words name overrides the photo's gender vote.
GENDER = "gender"
#: Names in ``FusedResult.parts`` (``search_explain``): the photo's kNN on the fused field, the words.
PHOTO = "fused_knn"
FACETS = "facets"
BM25 = "bm25"


@dataclass(frozen=True)
class ProductFacets:
    """What composition reads of one product: its category (leaf) and facet values, lower case
    (a facet may hold several: Flipkart's "Ideal For: Men, Boys" -> ``("men", "boys")``)."""

    category: str
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)


#: Product ids -> their facets (the storefront reads the database; the harness its data set).
FacetLookup = Callable[[list[int]], dict[int, ProductFacets]]


@dataclass(frozen=True)
class ComposedRanking:
    """A composed query's results, best first, and how its words were read.

    Attributes:
        results: fused results (``score`` and its parts: photo cosine, facet and vote boosts).
        named: facet -> value the words name, e.g. ``{"colour": "red", "gender": "women"}``.
        unmatched: words that name no facet value of the candidates (left to the shopper to rephrase).
        voted: the photo's voted category and gender, ``(category, gender or "")``.
    """

    results: list[FusedResult]
    named: dict[str, str]
    unmatched: list[str]
    voted: tuple[str, str]


def facet_values(specifications: dict, keys: dict[str, Iterable[str]] | None = None) -> dict[str, tuple[str, ...]]:
    """Facet name -> lower-case values from a product's specifications (``SEARCH_COMPOSE_FACETS`` maps
    each facet to the specification keys that may hold it, first present wins). A comma separates
    values; a possessive is dropped (``"Baby Girl's"`` -> ``"baby girl"``)."""
    keys = settings.SEARCH_COMPOSE_FACETS if keys is None else keys
    out = {}
    for facet, names in keys.items():
        for name in names:
            value = specifications.get(name)
            if isinstance(value, str) and value.strip():
                parts = (" ".join(re.findall(r"[a-z0-9]+", v.lower().replace("'s", ""))) for v in value.split(","))
                values = tuple(dict.fromkeys(v for v in parts if v))
                if values:
                    out[facet] = values
                    break
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def read_words(text: str, vocabulary: dict[str, set[str]]) -> tuple[dict[str, str], list[str]]:
    """The facet values ``text`` names, and its words that name none.

    Longest values first ("navy blue" before "blue"), whole words only ("women" never matches
    "men"); each word is used once. Connecting words ("for", "with", "in", "a", "the") are never
    reported as unmatched.

    Returns:
        ``({facet: value}, [unmatched words])``.
    """
    words = _words(text)
    used = [False] * len(words)
    named: dict[str, str] = {}
    pairs = sorted(((v, f) for f, vs in vocabulary.items() for v in vs), key=lambda vf: (-len(vf[0].split()), -len(vf[0]), vf))
    for value, facet in pairs:
        if facet in named:
            continue
        parts = value.split()
        for start in range(len(words) - len(parts) + 1):
            span = range(start, start + len(parts))
            if words[start:start + len(parts)] == parts and not any(used[i] for i in span):
                named[facet] = value
                for i in span:
                    used[i] = True
                break
    glue = {"for", "with", "in", "a", "an", "the", "and", "of", "to", "s"}
    unmatched = [w for w, u in zip(words, used, strict=True) if not u and w not in glue]
    return named, unmatched


def compose(
    words: str, photo_hits: list[Hit], facets: dict[int, ProductFacets], word_search: Callable[[str], set[int]] | None = None,
) -> ComposedRanking:
    """Rank ``photo_hits`` by the photo, the facets the words name and the photo's category vote.

    Args:
        words: the query's words.
        photo_hits: the photo's kNN hits in the fusion space (cosine scores), best first.
        facets: product id -> :class:`ProductFacets` of (at least) every hit; hits without are
            kept with no facet values.
        word_search: the words that name no facet value -> the ids BM25 finds for them (``None``: not searched).

    Returns:
        A :class:`ComposedRanking`; its results are ordered by score, ties by the photo's rank.
    """
    vocabulary: dict[str, set[str]] = {}
    for pf in facets.values():
        for facet, values in pf.values.items():
            vocabulary.setdefault(facet, set()).update(values)
    named, unmatched = read_words(words, vocabulary)
    bm25_ids = word_search(" ".join(unmatched)) if unmatched and word_search is not None else set()
    cats, genders = Counter(), Counter()
    for h in photo_hits[:VOTE_K]:
        pf = facets.get(h.id, ProductFacets(""))
        weight = max(h.score, 0.0)
        cats[pf.category] += weight
        for g in pf.values.get(GENDER, ("",))[:1]:
            genders[g] += weight
    voted_cat = cats.most_common(1)[0][0] if cats else ""
    voted_gender = "" if GENDER in named else (genders.most_common(1)[0][0] if genders else "")
    scored = []
    for rank, h in enumerate(photo_hits, start=1):
        pf = facets.get(h.id, ProductFacets(""))
        facet_match = (bool(named) or bool(bm25_ids)) and all(v in pf.values.get(f, ()) for f, v in named.items()) \
            and (not bm25_ids or h.id in bm25_ids)
        vote_match = bool(voted_cat) and pf.category == voted_cat and (not voted_gender or voted_gender in pf.values.get(GENDER, ()))
        parts = [ScorePart(PHOTO, h.score, rank, h.score)]
        if facet_match:
            parts.append(ScorePart(FACETS if named else BM25, 1.0, rank, FACET_BOOST))
        if vote_match:
            parts.append(ScorePart("photo_vote", 1.0, rank, VOTE_BOOST))
        scored.append((h.score + FACET_BOOST * facet_match + VOTE_BOOST * vote_match, rank, facet_match, parts, h.id))
    if any(s[2] for s in scored):  # words that name facets (or that BM25 finds) narrow the results
        scored = [s for s in scored if s[2]]
    scored.sort(key=lambda s: (-s[0], s[1]))
    if unmatched:
        logger.info("composed query: words %s name no facet value of the candidates; BM25 finds %d products for them",
                    unmatched, len(bm25_ids))
    return ComposedRanking([FusedResult(pid, score, parts) for score, _, _, parts, pid in scored], named, unmatched, (voted_cat, voted_gender))


def composed_ranking(
    *, backend, words: str, photo_vector: np.ndarray, filters=None, lookup: FacetLookup | None = None, candidates: int | None = None,
) -> ComposedRanking:
    """Run a photo + words query the composed way on ``backend``.

    Args:
        backend: the engine (its ``fused`` field holds the products' fused vectors).
        words: the query's words.
        photo_vector: ``(dim,)`` float32, L2-normalised: the photo alone projected into the live
            index's fusion space (``encoding.query_vectors(None, photo)``'s ``fused``).
        filters: the search's filters (applied inside the kNN).
        lookup: product ids -> facets (default :func:`database_facets`).
        candidates: photo hits re-scored (default :data:`COMPOSE_CANDIDATES`).
    """
    hits = backend.search_vector("fused", photo_vector, filters=filters, k=candidates or COMPOSE_CANDIDATES)

    def word_search(text: str) -> set[int]:
        return {h.id for h in backend.search_text(text, filters=filters, limit=settings.SEARCH_CANDIDATES)}

    return compose(words, hits, (lookup or database_facets)([h.id for h in hits]), word_search)


def database_facets(ids: list[int]) -> dict[int, ProductFacets]:
    """Facets of products ``ids`` from their rows (leaf category name, ``SEARCH_COMPOSE_FACETS`` values)."""
    from shop.models import Product  # the hybrid package itself needs no database

    rows = Product.objects.filter(pk__in=ids).values_list("pk", "category__name", "specifications")
    return {pk: ProductFacets((cat or "").lower(), facet_values(specs or {})) for pk, cat, specs in rows}
