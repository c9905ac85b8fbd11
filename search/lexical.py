"""What a query's words match before ranking: typos corrected, identifiers found, a text match or none.

Three decisions, each made on the engine's own index and shared by the storefront, the API
and the relevance harness (``search.evaluation``), so what is measured is what shoppers get:

* **Typos**: a query is corrected only when it matches poorly, i.e. some word of it is in no
  product (:meth:`BaseSearchBackend.known_words`) and is no English word either
  (:func:`english_words`: "sneakers" is a word this shop lacks, not a typo of "steamers");
  each such word is replaced by the engine's
  suggestion (:meth:`BaseSearchBackend.spelling_suggestions`), and the correction is kept only
  if the corrected words match a product. A correctly spelt query is never changed.
* **Identifiers**: code-like tokens (``search.identifiers``) are looked up exactly; the products
  carrying them are listed first (:func:`pin_first`).
* **Honest empty**: :attr:`LexicalPlan.text_match` says whether any product holds every word
  (an exact match, :func:`holds_every_word`); without one the caller shows meaning-only results
  as such (at most ``SEARCH_SIMILAR_LIMIT``), or nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from search.backends.base import BaseSearchBackend, FusedResult, ScorePart, SearchFilters
from search.identifiers import query_identifier_keys

#: A word of a query, for spelling: letters only (codes, numbers and sizes are never corrected).
_WORD = re.compile(r"[^\W\d_]+")
#: Most products a typed code may name and still be listed first: an id or a model number names
#: one product or a few variants; a token on more products is a word ("49ers" on every jersey).
MAX_IDENTIFIER_HITS = 5
#: Retriever name of identifier matches in score explanations.
IDENTIFIER = "identifier"


@dataclass(frozen=True)
class LexicalPlan:
    """How a query's words are searched.

    Attributes:
        typed: the words as the shopper typed them (after ``search.query.clean_query``).
        text: the words searched: ``corrected`` when a correction applies, else ``typed``.
        corrected: the corrected words when they replaced the typed ones, else ``None``.
        suggestion: a correction that was found but not applied (``autocorrect`` off), else ``None``.
        identifier_ids: products carrying an identifier of the query exactly, to list first.
        text_match: some product holds every searched word (:func:`holds_every_word`), or an identifier.
    """

    typed: str
    text: str
    corrected: str | None = None
    suggestion: str | None = None
    identifier_ids: tuple[int, ...] = field(default_factory=tuple)
    text_match: bool = True


#: English words with their frequencies, shipped by symspellpy (82,765 words: the intersection of
#: SCOWL and the Google Books n-gram counts).
ENGLISH_DICTIONARY = ("symspellpy", "frequency_dictionary_en_82_765.txt")


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Lower-case English words (:data:`ENGLISH_DICTIONARY`): a word among them is never corrected."""
    package, name = ENGLISH_DICTIONARY
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return frozenset(line.split(" ", 1)[0] for line in text.splitlines() if line)


def spelling_correction(backend: BaseSearchBackend, text: str) -> str | None:
    """``text`` with its unknown words replaced by the engine's suggestions, or ``None`` when
    every word is in some product or no unknown word has a suggestion.

    Raises:
        search.backends.base.SearchUnavailable: the engine cannot answer.
    """
    words = list(dict.fromkeys(m.group(0) for m in _WORD.finditer(text)))
    if not words:
        return None
    known = backend.known_words(words)
    english = english_words()
    unknown = [w for w in words if w not in known and w.lower() not in english]
    if not unknown:
        return None
    suggestions = backend.spelling_suggestions(unknown, context=[w for w in words if w in known])
    if not suggestions:
        return None
    corrected = _WORD.sub(lambda m: suggestions.get(m.group(0), m.group(0)), text)
    return corrected if corrected.lower() != text.lower() else None


#: BM25 hits read for an exact match: a product holding every word of a query scores above the
#: products holding fewer, bar rare words alone in long texts, so one is among the first hits.
EXACT_PROBE = 50


def holds_every_word(backend: BaseSearchBackend, text: str) -> bool:
    """Some product holds every distinct analysed term of ``text`` in a text field (among BM25's
    first :data:`EXACT_PROBE` hits, unfiltered). On an engine that reports no term coverage, any
    BM25 hit counts, as for the match cut-off.

    Raises:
        search.backends.base.SearchUnavailable: the engine cannot answer.
    """
    return any(h.coverage is None or h.coverage >= 1.0 - 1e-9 for h in backend.search_text(text, limit=EXACT_PROBE))


def lexical_plan(backend: BaseSearchBackend, text: str, *, filters: SearchFilters | None = None, autocorrect: bool = True) -> LexicalPlan:
    """Decide how ``text`` is searched on ``backend`` (see the module docstring).

    Args:
        backend: the engine the query runs on.
        text: cleaned query words (non-empty).
        filters: the search's filters (identifiers are looked up inside them; whether the words
            match, and their correction, are decided on the whole catalog).
        autocorrect: apply a correction (``False``: only report it as ``suggestion``).

    Raises:
        search.backends.base.SearchUnavailable: the engine cannot answer.
    """
    if not any(ch.isascii() for ch in text if ch.isalpha()):
        return LexicalPlan(typed=text, text=text)  # words in another script are matched by meaning (search.query)
    keys = query_identifier_keys(text)
    ids = tuple(h.id for h in backend.search_identifiers(keys, filters=filters, limit=MAX_IDENTIFIER_HITS + 1)) if keys else ()
    if len(ids) > MAX_IDENTIFIER_HITS:
        ids = ()
    if ids:
        return LexicalPlan(typed=text, text=text, identifier_ids=ids, text_match=True)
    # Matches are decided without the filters, as the kNN floor is (search.hybrid.floor): a
    # filter narrows the results and never turns them into "similar" or "none", so a facet's
    # count stays the number of results its filter opens.
    matched = holds_every_word(backend, text)
    correction = spelling_correction(backend, text)
    if correction is not None and not backend.search_text(correction, limit=1):
        correction = None  # the corrected words match nothing either: not worth showing
    if correction is None:
        return LexicalPlan(typed=text, text=text, text_match=matched)
    if not autocorrect:
        return LexicalPlan(typed=text, text=text, suggestion=correction, text_match=matched)
    return LexicalPlan(typed=text, text=correction, corrected=correction, text_match=holds_every_word(backend, correction))


def pin_first(fused: list[FusedResult], ids: tuple[int, ...] | list[int]) -> list[FusedResult]:
    """``fused`` with the products of ``ids`` moved to the top, in the ranking's order (those it
    had left out after them, in ``ids`` order); each gets the top score and an ``identifier`` part."""
    if not ids:
        return fused
    by_id = {r.id: r for r in fused}
    position = {r.id: i for i, r in enumerate(fused)}
    ordered = sorted(ids, key=lambda pid: (pid not in position, position.get(pid, 0)))
    top = max((r.score for r in fused), default=1.0)
    head = []
    for rank, pid in enumerate(ordered, start=1):
        found = by_id.get(pid)
        parts = [*(found.parts if found else []), ScorePart(IDENTIFIER, 1.0, rank, 0.0)]
        head.append(FusedResult(pid, top, parts))
    pinned = set(ids)
    return head + [r for r in fused if r.id not in pinned]


def plan_apply(
    fused: list[FusedResult], plan: LexicalPlan, *, photo: bool, min_cosine: float, text_knn: str, best: float | None = None,
    limit: int | None = None,
) -> tuple[list[FusedResult], str]:
    """A ranking as the plan shows it: identifiers first; for a words-only query that no product
    holds every word of, the first ``limit`` products close in meaning if the best of them is
    ``min_cosine`` alike, else none.

    Args:
        fused: the ranked matches of ``plan.text``, best first.
        plan: from :func:`lexical_plan`.
        photo: the query has a photo (then the words never empty the results).
        min_cosine: ``SEARCH_SIMILAR_MIN_COSINE``.
        text_knn: the text kNN's retriever name, whose raw score is a cosine.
        best: the query's best text cosine in the whole catalog (a filtered query's, from
            ``search.hybrid.floor.knn_best``); ``None``: the best among ``fused``.
        limit: most products close in meaning (``SEARCH_SIMILAR_LIMIT``); ``None``: every one.

    Returns:
        ``(results, match)``: ``match`` is ``"text"``, ``"similar"`` or ``"none"`` (``"text"``
        for a photo query, which the caller names).
    """
    fused = pin_first(fused, plan.identifier_ids)
    if plan.text_match or photo:
        return fused, "text"
    if best is None:
        best = max((p.raw for r in fused for p in r.parts if p.retriever == text_knn), default=0.0)
    if best < min_cosine:
        return [], "none"
    return fused[:limit] if limit is not None else fused, "similar"
