"""Shopper input checks: every query is normalised here, and unusable ones get a reason.

Follows Saleor's approach (sanitise, never let user text reach a query parser) with Wagtail's
habit of errors that say how to fix things.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Longest query accepted, in characters. Real shopper queries are far shorter (CrowdFlower's
#: longest is 49); 200 leaves room for pasted product names.
MAX_QUERY_CHARS = 200
#: Shown with a query whose words have no Latin letter (Chinese, Hindi...): BM25 matches them
#: only where product text has the same words (search.backends._segment), the multilingual
#: encoder by meaning (search.hybrid.language).
FOREIGN_NOTICE = ("This shop's catalog is in English; words in other languages are matched by meaning "
                  "and by product text in the same language, so results may be less precise.")


class QueryRejected(ValueError):
    """The query cannot be searched; ``reason`` is shown to the shopper (HTTP 400)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


#: Names a query language would read as fields before a colon ("title:towel"): dropped.
FIELD_NAMES = frozenset({"title", "brand", "category", "description", "name", "id", "pid", "sku", "external_id", "price", "text"})
#: Upper-case operators of Lucene / tantivy query syntax, and their symbol forms.
OPERATORS = frozenset({"AND", "OR", "NOT", "&&", "||", "TO"})
_FIELD_PREFIX = re.compile(r"(?<![\w-])([A-Za-z_]+):(?=\S|$)")
_SYNTAX_CHARS = re.compile(r"[()\[\]{}^~*?\\<>!|&]")
_SIGN = re.compile(r"(?:(?<=\s)|^)[+-]+(?=\w)")
SYNTAX_NOTICE = ("Search operators (field names such as title:, AND / OR / NOT, brackets and wildcards) are not used here: "
                 "we searched for the words “{words}”.")


def strip_query_syntax(text: str) -> tuple[str, bool]:
    """Shopper text with query-language syntax removed, so the words are searched as words.

    Field prefixes of :data:`FIELD_NAMES` are dropped ("title:towel" -> "towel"; another word
    before a colon stays a word), :data:`OPERATORS` written in capitals, brackets, wildcards,
    boosts (``^2``), fuzziness (``~``), quotes and leading ``+`` / ``-`` become spaces. Hyphens
    and dots inside words stay ("UFT-TSW-005", "19.5v").

    Returns:
        ``(words, changed)``: ``changed`` is True when field names, operators, brackets or
        wildcards were removed (quotes and signs alone are not worth a notice).
    """
    changed = False

    def field(match: re.Match) -> str:
        nonlocal changed
        changed = True
        return "" if match.group(1).lower() in FIELD_NAMES else match.group(1) + " "

    out = _FIELD_PREFIX.sub(field, text)
    if _SYNTAX_CHARS.search(out):
        changed = True
        out = _SYNTAX_CHARS.sub(" ", out)
    words = []
    for word in out.replace('"', " ").replace(":", " ").split():
        if word in OPERATORS:
            changed = True
            continue
        words.append(word)
    out = _SIGN.sub("", " ".join(words))
    return re.sub(r"\s+", " ", out).strip(), changed


@dataclass(frozen=True)
class CleanQuery:
    """A normalised query: ``text`` (may be empty for a photo-only query) and notices for the page."""

    text: str
    notices: tuple[str, ...] = ()


def normalise_query(raw: str | None) -> str:
    """NFKC, control characters removed, whitespace collapsed, stripped."""
    text = unicodedata.normalize("NFKC", raw or "")
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def clean_query(raw: str | None, *, has_image: bool = False, has_filters: bool = False, terms=None) -> CleanQuery:
    """Check a shopper's words.

    Args:
        raw: the text as typed.
        has_image: a photo comes with the query (then the words may be empty).
        has_filters: filters are set (then the words may be empty: browsing).
        terms: callable giving the BM25 terms of a text (to spot stop-word-only queries).

    Raises:
        QueryRejected: empty with nothing else to search by, too long, no letters or digits,
            only common words, only search operators.

    Query-language syntax is removed first (:func:`strip_query_syntax`, with a notice), so the
    returned ``text`` holds the shopper's words only.
    """
    text = normalise_query(raw)
    if not text:
        if has_image or has_filters:
            return CleanQuery("")
        raise QueryRejected("Type a few words or add a photo to search.")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryRejected(f"The search is {len(text):,} characters long; the limit is {MAX_QUERY_CHARS}. Try a few key words.")
    if not any(ch.isalnum() for ch in text):
        raise QueryRejected("The search has no letters or digits. Try words such as 'cotton towel'.")
    notices = []
    words, changed = strip_query_syntax(text)
    if changed:
        if not any(ch.isalnum() for ch in words):
            raise QueryRejected("The search has only search operators and no words. Try words such as 'cotton towel'.")
        notices.append(SYNTAX_NOTICE.format(words=words))
    text = words or text
    foreign = not any(ch.isascii() for ch in text if ch.isalpha())
    # A query in another script is searched by meaning (the multilingual text kNN) even when BM25
    # keeps none of its words (only Chinese or Hindi function words), so only English words count
    # as stop words.
    if terms is not None and not terms(text) and not has_image and not foreign:
        raise QueryRejected(f"'{text}' has only very common words. Add what you are looking for, e.g. 'watch for men'.")
    if foreign:
        notices.append(FOREIGN_NOTICE)
    return CleanQuery(text, tuple(notices))
