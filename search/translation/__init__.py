"""Dictionary-based query translation: English words for a Chinese or Hindi query's BM25 side.

On an English catalog, BM25 finds nothing for "纯棉浴巾" or "वाईफाई राउटर": no product holds those
words. The standard remedy of cross-language retrieval without a translation model is
dictionary-based query translation (Ballesteros & Croft, "Dictionary methods for cross-lingual
information retrieval", DEXA 1996; Pirkola, SIGIR 1998): segment the query, look each word up in a
bilingual dictionary and search the target language's words. :func:`translate_query` does that for a
query whose words have no Latin letter (:func:`search.hybrid.language.is_other_script`):

* **Chinese** (:mod:`search.translation.chinese`): jieba's words looked up in CC-CEDICT;
* **Hindi** (:mod:`search.translation.hindi`): English loanwords written in Devanagari (राउटर,
  लैपटॉप, बैटरी) transliterated and matched by sound to English words.

The English words run as their own BM25 list (``bm25_translated``,
:mod:`search.hybrid.retrievers`), weighted below the typed words' BM25; the query's own words stay
on BM25 (a catalog written in that language) and on the multilingual kNN, which encodes the query
as typed. ``SEARCH_QUERY_TRANSLATION`` = ``"dictionary"`` (default) or ``"off"``. A query with a
Latin letter is never translated, so English rankings are exactly what they were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.conf import settings

from search.backends._segment import has_devanagari, is_other_script

#: Values of ``SEARCH_QUERY_TRANSLATION``.
TRANSLATION_MODES = ("dictionary", "off")


def translate_query(text: str, *, known: Callable[[Sequence[str]], set[str]] | None = None, mode: str | None = None) -> str:
    """English words for ``text``'s BM25 side, space-joined; "" when there are none.

    Args:
        text: cleaned query words.
        known: the catalog's test of words (``backend.known_words``), which picks among a Hindi
            word's sound-alikes (:func:`search.translation.hindi.translate`); ``None``: the closest.
        mode: ``"dictionary"`` or ``"off"`` (default ``SEARCH_QUERY_TRANSLATION``).

    Returns:
        "" for a query with a Latin letter, with translation off, or with no word found
        ("纯棉浴巾" -> "pure cotton 100% cotton bath towel"; "वाईफाई राउटर" -> "router").

    Raises:
        ValueError: unknown ``mode``.
        search.backends.base.SearchUnavailable: ``known`` cannot ask the engine.
    """
    mode = mode or getattr(settings, "SEARCH_QUERY_TRANSLATION", "dictionary")
    if mode not in TRANSLATION_MODES:
        raise ValueError(f"SEARCH_QUERY_TRANSLATION is {mode!r}; use one of: {', '.join(TRANSLATION_MODES)}")
    if mode == "off" or not is_other_script(text):
        return ""
    from search.translation import chinese, hindi  # dictionaries are read on first use, never at import

    words: list[str] = []
    if chinese.has_han(text):
        words += chinese.translate(text)
    if has_devanagari(text):
        words += hindi.translate(text, known)
    return " ".join(dict.fromkeys(words))
