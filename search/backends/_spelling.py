"""Spelling suggestions from an index's own vocabulary (SymSpell, symspellpy).

SymSpell (Garbe, 2012) looks words up by symmetric deletes: each vocabulary word is stored
with its deletions up to the largest edit distance, so a lookup costs a few hash probes
whatever the vocabulary's size. Distances are Damerau-Levenshtein (optimal string alignment:
"samsnug" -> "samsung" is one edit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from symspellpy import SymSpell, Verbosity

#: Shortest word corrected with one edit, and with two (Algolia's defaults,
#: ``minWordSizefor1Typo`` 4 and ``minWordSizefor2Typos`` 8): "foo" is never corrected.
MIN_CHARS_ONE_EDIT = 4
MIN_CHARS_TWO_EDITS = 8
#: Equally close candidates weighed by co-occurrence with the query's other words, at most.
MAX_CANDIDATES = 8


def max_edits(word: str) -> int:
    """Edits allowed for ``word``: 0 under 4 characters, 1 from 4, 2 from 8; 0 for a word holding a digit."""
    if any(ch.isdigit() for ch in word) or len(word) < MIN_CHARS_ONE_EDIT:
        return 0
    return 2 if len(word) >= MIN_CHARS_TWO_EDITS else 1


class Speller:
    """Suggestions for misspelt words from ``vocabulary``.

    Args:
        vocabulary: word (lower case, as written) -> documents holding it; words with digits or
            shorter than 3 characters are left out (they are not typed as words).
    """

    def __init__(self, vocabulary: Mapping[str, int]):
        self.symspell = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        for word, count in vocabulary.items():
            if len(word) >= 3 and word.isalpha() and count > 0:
                self.symspell.create_dictionary_entry(word, int(count))
        self.size = len(self.symspell.words)

    def candidates(self, word: str) -> list[tuple[str, int]]:
        """The vocabulary words closest to ``word`` (all at the smallest distance found), with
        their document counts, most frequent first; ``[]`` when ``word`` is allowed no edit."""
        lowered = word.lower()
        edits = max_edits(lowered)
        if not edits or not lowered.isalpha():
            return []
        found = [s for s in self.symspell.lookup(lowered, Verbosity.CLOSEST, max_edit_distance=edits) if s.term != lowered]
        return sorted(((s.term, s.count) for s in found), key=lambda c: -c[1])

    def suggest(self, words: Sequence[str], cooccurrence: Callable[[str], int] | None = None) -> dict[str, str]:
        """Word -> the closest vocabulary word; among equally close ones the one found in the most
        documents with the query's other words (``cooccurrence(candidate)``, when given: "pressure
        coker" -> "cooker", not the more frequent "cover"), then the most frequent. Words allowed
        no edit (:func:`max_edits`) or without a candidate are left out."""
        out = {}
        for word in words:
            found = self.candidates(word)
            if not found:
                continue
            if cooccurrence is not None and len(found) > 1:
                found = sorted(found[:MAX_CANDIDATES], key=lambda c: (-cooccurrence(c[0]), -c[1]))
            out[word] = found[0][0]
        return out
