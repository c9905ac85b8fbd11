"""Hindi -> English words for English loanwords written in Devanagari, for a Hindi query's BM25 side.

Shoppers write many product names in Hindi as the English word spelt in Devanagari: राउटर
(router), लैपटॉप (laptop), बैटरी (battery), लिपस्टिक (lipstick). No Hindi-English dictionary is
installable offline, but these words can be recovered from their sound:

1. **transliterate** the word to Latin letters with ``indic-transliteration`` (2.3.82, MIT; the
   OPTITRANS scheme writes ॉ as "o": लैपटॉप -> "laipatop"), with Hindi's final-schwa deletion
   (राउटर -> "rautar", not "rautara") and anusvara read as the nasal of the next consonant;
2. **match by sound**: the English words (symspellpy's 82,765-word frequency list, the one
   :func:`search.lexical.english_words` reads) with the same Metaphone key (Philips 1990;
   ``jellyfish`` 1.3.0, MIT: "rautar" and "router" are both RTR) whose spelling is at least
   :data:`MIN_SIMILARITY` alike (Jaro-Winkler), the closest spelling first, then the most
   frequent (measured against the most frequent first, README "Languages");
3. **the catalog's own words**: of those, the first one some product holds (the engine's
   ``known_words``: "router", not the closer "radar" or "rater"); without a catalog, the first.

A Hindi word that merely shares a short consonant skeleton with some English word gets nothing
when no product holds such a word, rather than noise.

Hindi words that are not loanwords (तौलिया, कंबल) are left to the multilingual kNN.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from importlib import resources

from search.backends._segment import OTHER_STOP_WORDS

#: Least Jaro-Winkler similarity between a transliteration and its English match.
MIN_SIMILARITY = 0.6
#: Sound-alikes checked against the catalog per Hindi word.
MAX_CANDIDATES = 8
#: Shortest English word matched (two-letter keys collide with too many words).
MIN_CHARS = 3
#: English words with their Google Books counts, shipped by symspellpy (as ``search.lexical``).
ENGLISH_DICTIONARY = ("symspellpy", "frequency_dictionary_en_82_765.txt")
#: Function words never given as matches.
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for from has have he her his in into is it its of on or she that the their "
    "them then there these they this to was were which will with you your not".split()
)

#: ``backend.known_words``: the words some product holds.
Known = Callable[[Sequence[str]], set[str]]
_WORD = re.compile(r"[\u0900-\u097f]+")
_CONSONANT = re.compile(r"[\u0915-\u0939\u0958-\u095f\u093c]$")
_ANUSVARA = re.compile(r"M(?=[pbm])")
_lock = threading.Lock()
_by_key: dict[str, list[tuple[str, int]]] | None = None


def transliterate(word: str) -> str:
    """``word`` (Devanagari) in lower-case Latin letters as it is pronounced ("राउटर" -> "rautar")."""
    from indic_transliteration import sanscript

    latin = sanscript.transliterate(word, sanscript.DEVANAGARI, sanscript.OPTITRANS)
    latin = _ANUSVARA.sub("m", latin).replace("M", "n").replace("oa", "o").replace(".", "").lower()
    if _CONSONANT.search(word) and latin.endswith("a"):
        latin = latin[:-1]
    return latin


def _index() -> dict[str, list[tuple[str, int]]]:
    global _by_key
    if _by_key is None:
        with _lock:
            if _by_key is None:
                import jellyfish

                package, name = ENGLISH_DICTIONARY
                by_key: dict[str, list[tuple[str, int]]] = {}
                for line in resources.files(package).joinpath(name).read_text(encoding="utf-8").splitlines():
                    word, _, count = line.partition(" ")
                    if len(word) >= MIN_CHARS and word.isalpha() and word not in ENGLISH_STOP_WORDS:
                        by_key.setdefault(jellyfish.metaphone(word), []).append((word, int(count or 0)))
                _by_key = by_key
    return _by_key


def sound_alikes(word: str) -> list[str]:
    """English words ``word`` (Devanagari) may be, closest spelling first (Jaro-Winkler, then the
    most frequent): same Metaphone key, similarity >= :data:`MIN_SIMILARITY`, at most
    :data:`MAX_CANDIDATES` ("राउटर" "rautar" -> radar, rater, router, ...)."""
    import jellyfish

    latin = transliterate(word)
    if len(latin) < 2:
        return []
    scored = [(jellyfish.jaro_winkler_similarity(latin, w), n, w) for w, n in _index().get(jellyfish.metaphone(latin), [])]
    return [w for s, _, w in sorted(scored, reverse=True) if s >= MIN_SIMILARITY][:MAX_CANDIDATES]


def translate(text: str, known: Known | None = None) -> list[str]:
    """English words for the Devanagari words of ``text`` that are English loanwords, in query order.

    Args:
        text: a query holding Devanagari words ("वाईफाई राउटर").
        known: the catalog's test of words (``backend.known_words``: words -> those some product
            holds); ``None`` takes each word's closest sound-alike.

    Returns:
        One English word per matched Devanagari word (["router"]); stop words (के, लिए...) and
        words without a sound-alike the catalog holds give none.

    Raises:
        search.backends.base.SearchUnavailable: ``known`` cannot ask the engine.
    """
    out = []
    for word in _WORD.findall(text):
        if word in OTHER_STOP_WORDS:
            continue
        candidates = sound_alikes(word)
        if known is not None and candidates:
            held = known(candidates)
            candidates = [w for w in candidates if w in held]
        if candidates:
            out.append(candidates[0])
    return out
