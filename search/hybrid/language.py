"""Retriever weights by the script of the query's words.

MiniLM (``text_knn``) and the fused vector built from it (``fused_knn``) were trained on English:
a Chinese or Hindi query lands near unrelated products (precision@10 0.06 on the multilingual
check set, README "Languages"), and in the blend that noise outranks what the retrievers that
read the query's language found. So a query whose words have no Latin letter (the storefront's
"other language" case, :func:`search.query.clean_query`) leans on those retrievers instead:

* BM25, when it matched the query's words (a catalog written in that language),
* BM25 over the query's dictionary translation (``bm25_translated``, :mod:`search.translation`),
  when it matched the English words, and
* the multilingual text kNN (``text_e5_knn``, multilingual-e5-small), when it is in service,

and the English-only ones get their weight times ``SEARCH_OTHER_SCRIPT_ENGLISH_ONLY_WEIGHT``
(default :data:`ENGLISH_ONLY_WEIGHT`). When neither answers (no multilingual
encoder and a catalog without the words), the weights stay as they are: MiniLM's guesses are
then all there is. Queries with a Latin word, and photo queries, are never touched, so English
rankings are exactly what they were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.conf import settings

from search.backends._segment import has_devanagari, has_han, is_other_script

#: The retrievers whose models read English only.
ENGLISH_ONLY = ("text_knn", "fused_knn")
#: Retrievers that read any language: BM25 (the catalog's own words) and multilingual encoders' kNN.
MULTILINGUAL_KNN = ("text_e5_knn",)
#: BM25 over the query's dictionary translation (``search.translation``): it reads the query's
#: language too, through the dictionary.
TRANSLATED = ("bm25_translated",)
#: Default weight factor of :data:`ENGLISH_ONLY` retrievers for a query in another script (0: left
#: out; setting ``SEARCH_OTHER_SCRIPT_ENGLISH_ONLY_WEIGHT``, 1 turns the rule off), chosen on the
#: multilingual check set (``manage.py evaluate multilingual``: 0 and 0.25 tie, 0.5 loses).
ENGLISH_ONLY_WEIGHT = 0.0
#: Default factor on ``bm25_translated``'s weight for a Hindi query (setting
#: ``SEARCH_TRANSLATION_SOUND_WEIGHT``): its words are loanwords matched by sound, a guess, where a
#: Chinese query's come from a dictionary (README "Languages": 0.5 against 1 on the multilingual set).
SOUND_WEIGHT = 0.5

__all__ = ["ENGLISH_ONLY", "ENGLISH_ONLY_WEIGHT", "MULTILINGUAL_KNN", "SOUND_WEIGHT", "TRANSLATED", "is_other_script", "language_weights"]


def language_weights(
    text: str, weights: Mapping[str, float], *, answered: Sequence[str], photo: bool = False,
) -> dict[str, float]:
    """``weights`` for a query in ``text``'s script.

    Args:
        text: the query's words ("" for a photo-only query).
        weights: retriever -> weight (``SEARCH_WEIGHTS`` with any overrides).
        answered: the retrievers that returned hits for this query, or that will run for it
            (an engine fusing on its own side is asked before it answers: pass the multilingual
            kNN when its vector is in the query).
        photo: the query has a photo (its weights are left alone).

    Returns:
        A new dict: for a Hindi query, ``bm25_translated``'s weight times
        ``SEARCH_TRANSLATION_SOUND_WEIGHT`` (its English words are guessed by sound,
        :mod:`search.translation.hindi`); the English-only retrievers' weights times the factor when
        ``text`` has no Latin letter and BM25, the translation or a multilingual kNN with weight > 0
        answered; otherwise ``weights`` unchanged.
    """
    out = dict(weights)
    if TRANSLATED[0] in out and is_other_script(text) and has_devanagari(text) and not has_han(text):
        out[TRANSLATED[0]] *= float(getattr(settings, "SEARCH_TRANSLATION_SOUND_WEIGHT", SOUND_WEIGHT))
    factor = float(getattr(settings, "SEARCH_OTHER_SCRIPT_ENGLISH_ONLY_WEIGHT", ENGLISH_ONLY_WEIGHT))
    if photo or factor == 1.0 or not is_other_script(text):
        return out
    readers = [name for name in ("bm25", *TRANSLATED, *MULTILINGUAL_KNN) if name in answered and out.get(name, 1.0) > 0]
    if not readers:
        return out
    for name in ENGLISH_ONLY:
        if name in out or name in answered:
            out[name] = out.get(name, 1.0) * factor
    return out
