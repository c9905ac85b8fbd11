"""Identifiers a shopper may type: model numbers, style codes, SKUs and the source's product ids.

A product's identifiers are normalised into *keys* (lower case, letters and digits only, so
"UFT-TSW-005", "uft tsw 005" and "UFT_TSW_005" are one key) and indexed as exact terms
(``SearchDocument.identifiers``); a query that looks like an identifier is looked up by its key
and the products carrying it are listed first (``search.lexical``). A code written in parts also
gets the key of each leading run of two or more parts that holds a digit ("UFT-TSW-005-BK-BR" is
found by "UFT-TSW-005"), so a shopper may leave out a colour or size suffix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

#: Specification keys whose values are identifiers (Flipkart's, case-insensitive).
IDENTIFIER_SPEC_KEYS = frozenset({"model id", "model number", "model", "style code", "design code", "part number", "sku", "ean", "isbn"})
#: Fields of the imported source row that are the source's own ids (Flipkart's ``pid``).
SOURCE_ID_FIELDS = ("pid", "uniq_id", "sku")
#: Fewest letters and digits in an identifier (shorter codes are words or sizes: "XL", "4K").
MIN_KEY_CHARS = 4
#: Fewest letters and digits of a title word taken as a code (a title's short tokens are words).
TITLE_KEY_CHARS = 5
_PART_SPLIT = re.compile(r"[-_/.]+")
#: A number with a unit or a size ("16GB", "1000W", "2.5mm", "32inch") is a quantity, not a code.
_QUANTITY = re.compile(
    r"\d+(?:[.,]\d+)?(?:gb|tb|mb|kb|w|kw|v|mah|ah|mm|cm|m|km|kg|g|mg|ml|l|ltr|inch|inches|in|ft|hz|khz|mhz|ghz|mp|"
    r"k|x|p|pc|pcs|oz|lb|lbs|yr|yrs|gsm|tc|rpm|db|cc|s|sec|min|h|hrs|d|th|st|nd|rd)", re.IGNORECASE)


def identifier_key(text: str) -> str:
    """``text`` reduced to lower-case ASCII letters and digits: ``"UFT-TSW-005"`` -> ``"ufttsw005"``."""
    folded = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def looks_like_identifier(token: str) -> bool:
    """One typed token that is a code rather than a word: at least 4 letters and digits, a
    digit among them, and either a letter too ("24742LMGY", "UFT-TSW-005") or at least 5 digits
    (a numeric product id; "2016" or "1000" stay words); a quantity ("16GB", "1000W") is not."""
    key = identifier_key(token)
    if len(key) < MIN_KEY_CHARS or not any(ch.isdigit() for ch in key) or _QUANTITY.fullmatch(token.strip(",;:()")):
        return False
    return any(ch.isalpha() for ch in key) or len(key) >= 5


def identifier_keys(value: str) -> list[str]:
    """The keys a product is found by for one identifier ``value``: its whole key, and the key of
    each leading run of two or more of its parts that holds a digit; ``[]`` if it is not a code."""
    value = (value or "").strip()
    if not value or " " in value or not looks_like_identifier(value):
        return []
    keys = [identifier_key(value)]
    parts = [p for p in _PART_SPLIT.split(value) if p]
    for n in range(2, len(parts)):
        prefix = identifier_key("".join(parts[:n]))
        if len(prefix) >= MIN_KEY_CHARS and any(ch.isdigit() for ch in prefix):
            keys.append(prefix)
    return list(dict.fromkeys(keys))


def document_identifiers(*, external_id: str = "", title: str = "", specifications: Mapping | None = None,
                         source_row: Mapping | None = None) -> tuple[str, ...]:
    """Every key of a product: its external id, the source row's ids (:data:`SOURCE_ID_FIELDS`),
    specification values under :data:`IDENTIFIER_SPEC_KEYS`, and code-like words of its title.

    Args:
        external_id: the source catalog's id (Flipkart's ``uniq_id``, a merchant's SKU).
        title: the product title; its tokens that look like codes ("24742LMGY") count.
        specifications: name -> value (``Product.specifications``).
        source_row: the row as imported (``Product.source_row``).
    """
    values: list[str] = [external_id]
    for name in SOURCE_ID_FIELDS:
        value = (source_row or {}).get(name)
        if isinstance(value, str):
            values.append(value)
    for name, value in (specifications or {}).items():
        if str(name).strip().lower() in IDENTIFIER_SPEC_KEYS and isinstance(value, str):
            values.append(value)
    values += [t.strip(",;:()[]\"'") for t in (title or "").split() if len(identifier_key(t)) >= TITLE_KEY_CHARS]
    return tuple(dict.fromkeys(k for v in values for k in identifier_keys(v)))


def query_identifier_keys(text: str) -> list[str]:
    """Keys of the code-like tokens of a query ("UFT-TSW-005 watch" -> ``["ufttsw005"]``); the
    whole query's key too when it is one code typed with spaces ("UFT TSW 005")."""
    tokens: Iterable[str] = (text or "").split()
    keys = [identifier_key(t) for t in tokens if looks_like_identifier(t)]
    if len((text or "").split()) > 1 and looks_like_identifier(text.replace(" ", "")) and not any(t.isalpha() and len(t) > 3 for t in text.split()):
        keys.append(identifier_key(text))
    return list(dict.fromkeys(keys))
