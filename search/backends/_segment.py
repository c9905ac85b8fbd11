"""Word segmentation of text written without spaces between words (Chinese), before BM25 analysis.

tantivy's analyzers split text at spaces and punctuation; Chinese has neither between words, so
a Chinese title would reach the index as one long token ("红色硅胶手机壳") that no query matches.
:func:`segment` puts spaces between the words of every run of Han characters, found by ``jieba``
(0.42, MIT; its dictionary ships with the package, nothing is downloaded), and leaves all other
text as it is: Latin text is tokenised exactly as before, and Devanagari (Hindi) words are
already separated by spaces, which the analyzer's Unicode word pattern keeps whole, vowel signs
and viramas included (:data:`search.backends._bm25.WORD_PATTERN`).

Documents and queries are segmented differently, as jieba's authors advise for search engines:
a document in *search* mode (each long word and the dictionary words inside it: "笔记本电脑"
-> 笔记, 电脑, 笔记本, 笔记本电脑), a query in *precise* mode (the likeliest words only), so that
a query's word is found inside a document's longer compound.
"""

from __future__ import annotations

import logging
import re
import threading

#: Han characters: CJK Unified Ideographs, Extension A, Compatibility Ideographs.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
#: A run of Han characters with the ASCII letters and digits joined to it ("T恤", "红色iPhone12"):
#: jieba segments mixed runs itself and keeps known mixed words such as "T恤" whole.
HAN_RUN = re.compile(f"[{_HAN}A-Za-z0-9]*[{_HAN}][{_HAN}A-Za-z0-9]*")

#: Function words of Chinese and Hindi shopper queries ("我想买一条...的", "...के लिए"), dropped like
#: English stop words by both engines' analyzers.
OTHER_STOP_WORDS = tuple(
    "的 了 和 与 及 或 是 在 我 想 要 买 请 给 有 一个 一条 一件 一双 一些 这 那 吗 呢 吧 "
    "की के का को में से और है हैं एक लिए पर यह वह भी तथा या मुझे चाहिए वाला वाली वाले".split()
)
#: A letter of a script other than Latin (the catalog's words are matched on sub-fields analysed
#: for such scripts by the Elasticsearch backend): anything alphabetic beyond Latin Extended.
_NON_LATIN_LETTER = re.compile(r"[^\W\d_\u0000-\u024f\u1e00-\u1eff]")

_lock = threading.Lock()
_tokenizer = None


def _jieba():
    """jieba's tokenizer, built on first use (about 1-2 s: it reads its 350k-word dictionary)."""
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                _tokenizer = tokenizer
    return _tokenizer


def has_han(text: str) -> bool:
    """Whether ``text`` holds a Han (Chinese) character."""
    return HAN_RUN.search(text or "") is not None


def has_devanagari(text: str) -> bool:
    """Whether ``text`` holds a Devanagari (Hindi) letter or sign."""
    return any("\u0900" <= ch <= "\u097f" for ch in text or "")


def has_non_latin(text: str) -> bool:
    """Whether ``text`` holds a letter of a script other than Latin (Han, Devanagari, Cyrillic...)."""
    return _NON_LATIN_LETTER.search(text or "") is not None


def segment(text: str, *, document: bool = False) -> str:
    """``text`` with spaces between the words of each Han run; other text unchanged.

    Args:
        text: a product field or a shopper's query.
        document: segment for the index (jieba's search mode: long words and the words inside
            them) rather than for a query (precise mode).

    Returns:
        The same text when it holds no Han character (no cost for Latin or Devanagari text).
    """
    if not text or not has_han(text):
        return text
    tokenizer = _jieba()
    cut = tokenizer.cut_for_search if document else tokenizer.cut

    def words(match: re.Match) -> str:
        return " " + " ".join(w for w in cut(match.group(), HMM=True) if w.strip()) + " "

    return HAN_RUN.sub(words, text)


_LATIN = "abcdefghijklmnopqrstuvwxyz"


def is_other_script(text: str) -> bool:
    """Whether ``text`` has letters and none of them is Latin ("纯棉浴巾", "सूती तौलिया"; not "towel 毛巾")."""
    letters = [ch for ch in text or "" if ch.isalpha()]
    return bool(letters) and has_non_latin(text) and not any(_is_latin(ch) for ch in letters)


def _is_latin(ch: str) -> bool:
    return ch.lower() in _LATIN or "\u00c0" <= ch <= "\u024f" or "\u1e00" <= ch <= "\u1eff"


def split_scripts(text: str) -> tuple[str, str]:
    """``text`` as (its words without a non-Latin letter, its words with one), each space-joined.

    "红色iPhone 12" -> ("iPhone 12", "红色"): the English fields get the Latin words, the ``.words``
    sub-fields the rest, so a Chinese character never meets the English analyzer (which would
    make single characters terms).
    """
    latin, other = [], []
    for word in text.split():
        if not has_non_latin(word):
            latin.append(word)
            continue
        other.append(word)
        rest = re.sub(r"[^\x00-\x7f]+", " ", word).split()  # Latin letters and digits glued to other scripts
        latin.extend(w for w in rest if any(ch.isalnum() for ch in w))
    return " ".join(latin), " ".join(other)
