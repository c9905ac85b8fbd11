"""Catalog text cleaning: one service for every way a product is written.

The importer (``shop.services.catalog_import``), the merchant writes behind the API and the bulk
upload (``shop.merchant_services``) and the admin's product form all call
:func:`product_values_clean`, so a product is cleaned alike whichever door it came through.
Each rule counts what it changed in a :class:`CleaningReport`; nothing is dropped without a
count (the import summary and the admin's message show them).

Rules (the keys of :data:`RULES`), applied in this order to the title, description, brand name
and every specification name and value:

1. ``html_entities``: HTML entities unescaped (``&amp;`` -> ``&``), repeatedly for
   double-escaped text; only well-formed entities with their ``;`` (ftfy's ``unescape_html``).
2. ``encoding``: broken encodings repaired with ftfy (mojibake such as ``CafÃ©`` -> ``Café``,
   C1 control characters, ligatures), and replacement characters (U+FFFD, whose bytes were lost
   before the catalog got them and cannot be recovered) removed. Curly quotes stay curly.
3. ``whitespace``: runs of spaces, tabs and no-break spaces become one space; line endings
   become ``\\n``; lines are trimmed; at most one blank line between paragraphs. Titles, brands
   and specifications become a single line.
4. ``placeholders``: specifications whose value means "nothing" (:data:`PLACEHOLDERS`, any
   case, alone or followed by a unit: "NA cm", "NA L") are dropped, and so is a brand that is
   only a placeholder.
5. ``repeats``: in descriptions, a line (paragraph) that repeats an earlier one, and a sentence
   of :data:`MIN_REPEAT_WORDS` words or more that repeats an earlier sentence, are removed
   (the first occurrence stays). Shorter sentences ("Yes.", "Machine wash.") are left alone.
   A specification whose cleaned name repeats an earlier one is dropped (the first stays).

``brand`` (matching a brand to its canonical spelling) is counted by :mod:`shop.brands`, which
needs the database. Cleaning is idempotent: cleaning clean values changes nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import ftfy
from ftfy.fixes import unescape_html

#: Every rule, in the order shown to people, with the words used in reports.
RULES = {
    "placeholders": "placeholder values removed (NA, N/A, -, null, empty)",
    "repeats": "repeated sentences or paragraphs collapsed",
    "encoding": "broken characters repaired or removed",
    "html_entities": "HTML entities unescaped",
    "whitespace": "whitespace normalised",
    "brand": "brand matched to an existing spelling",
}
#: Specification values (compared case-insensitively, after whitespace normalisation) that mean
#: "no value"; the Flipkart catalog has 44 "NA" values.
PLACEHOLDERS = frozenset({"na", "n/a", "-", "", "null"})
#: A placeholder followed by a unit of up to three letters: Flipkart has "NA cm" (4), "NA L" (3), "NA GB".
_PLACEHOLDER_WITH_UNIT = re.compile(r"(?:na|n/a|null|-) [a-z]{1,3}\.?")
#: Shortest sentence (in words) removed when it repeats: 4 keeps short, legitimately repeated
#: phrases ("Yes.", "Machine wash.", "Price: Rs.") and catches the Flipkart descriptions whose
#: whole text appears twice.
MIN_REPEAT_WORDS = 4
#: ftfy's fixes for broken encodings; line breaks and entities are handled by the rules above,
#: and curly quotes are correct text, not damage.
_FTFY = ftfy.TextFixerConfig(unescape_html=False, uncurl_quotes=False, fix_line_breaks=False, explain=False)
_SPACES = re.compile(r"[^\S\n]+")  # whitespace except newlines (tabs, no-break spaces, ...)
_BLANK_LINES = re.compile(r"\n{3,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
#: Fields of a product that hold text (``specifications`` is a dict of texts).
TEXT_FIELDS = ("title", "description", "brand")


@dataclass
class CleaningReport:
    """What cleaning changed: per rule, how many values (texts, specifications, sentences) it touched.

    ``counts`` keys are :data:`RULES` keys; ``examples`` keeps up to three removed or changed
    values per rule, for messages to merchants.
    """

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, rule: str, n: int = 1, example: str = "") -> None:
        if n <= 0:
            return
        self.counts[rule] += n
        if example:
            shown = self.examples.setdefault(rule, [])
            if len(shown) < 3 and example not in shown:
                shown.append(example[:80])

    @property
    def rules(self) -> list[str]:
        """The rules that changed something, in :data:`RULES` order."""
        return [rule for rule in RULES if self.counts[rule]]

    def merge(self, other: CleaningReport) -> None:
        """Add ``other``'s counts and examples to this report."""
        self.counts.update(other.counts)
        for rule, shown in other.examples.items():
            mine = self.examples.setdefault(rule, [])
            mine.extend(e for e in shown if e not in mine)
            del mine[3:]

    def describe(self) -> str:
        """One sentence for a merchant, e.g. ``"2 placeholder values removed (NA, ...); whitespace normalised."``

        Empty when nothing changed.
        """
        parts = []
        for rule in self.rules:
            shown = self.examples.get(rule)
            detail = f": {', '.join(repr(e) for e in shown)}" if shown and rule in ("placeholders", "brand") else ""
            parts.append(f"{RULES[rule]} ({self.counts[rule]}){detail}")
        return "; ".join(parts)

    def __bool__(self) -> bool:
        return bool(self.rules)


def clean_text(text: str, report: CleaningReport, *, multiline: bool = False) -> str:
    """``text`` with entities unescaped, encoding repaired and whitespace normalised.

    Args:
        text: any string (``None`` is treated as empty).
        report: counts ``html_entities``, ``encoding`` and ``whitespace`` (one per text changed).
        multiline: keep line breaks (descriptions); otherwise the result is one line.

    Returns:
        The cleaned text (``""`` for blank input).
    """
    text = text or ""
    unescaped = text
    for _ in range(3):  # "&amp;amp;" is escaped twice; stop at the first pass that changes nothing
        again = unescape_html(unescaped)
        if again == unescaped:
            break
        unescaped = again
    if unescaped != text:
        report.add("html_entities")
    repaired = ftfy.fix_text(unescaped, _FTFY).replace("\ufffd", "")
    if repaired != unescaped:
        report.add("encoding")
    spaced = _normalise_space(repaired, multiline=multiline)
    if spaced != repaired:
        report.add("whitespace")
    return spaced


def _normalise_space(text: str, *, multiline: bool) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    if not multiline:
        return " ".join(text.split())
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _sentence_key(sentence: str) -> str:
    return " ".join(sentence.casefold().split())


def collapse_repeats(text: str, report: CleaningReport) -> str:
    """``text`` (already whitespace-normalised) without repeated lines and long repeated sentences.

    Counts ``repeats`` once per line or sentence removed.
    """
    seen_lines: set[str] = set()
    seen_sentences: set[str] = set()
    kept_lines: list[str] = []
    removed = 0
    for line in text.split("\n"):
        key = _sentence_key(line)
        if not key:
            kept_lines.append("")
            continue
        if key in seen_lines:
            removed += 1
            continue
        seen_lines.add(key)
        sentences = []
        for sentence in _SENTENCE_END.split(line):
            skey = _sentence_key(sentence)
            if len(skey.split()) >= MIN_REPEAT_WORDS:
                if skey in seen_sentences:
                    removed += 1
                    continue
                seen_sentences.add(skey)
            sentences.append(sentence)
        if sentences:
            kept_lines.append(" ".join(sentences))
    report.add("repeats", removed)
    if not removed:
        return text
    return _BLANK_LINES.sub("\n\n", "\n".join(kept_lines)).strip()


def is_placeholder(value: str) -> bool:
    """True for a value that means "nothing": one of :data:`PLACEHOLDERS` (any case and spacing),
    alone or followed by a unit ("NA cm")."""
    text = " ".join(str(value).split()).casefold()
    return text in PLACEHOLDERS or _PLACEHOLDER_WITH_UNIT.fullmatch(text) is not None


def clean_specifications(specs: Any, report: CleaningReport) -> Any:
    """Specifications with cleaned names and text values, and the placeholder values dropped.

    Args:
        specs: a ``{name: value}`` dict. Anything else (the admin's JSON editor accepts a list)
            is returned unchanged, for the form to refuse with a reason.

    Returns:
        A new dict in the same order. Text values are cleaned; ``None`` and placeholder texts are
        dropped (counted as ``placeholders``); numbers and other JSON values are kept as they are.
    """
    if not isinstance(specs, dict):
        return specs
    out: dict[str, Any] = {}
    for key, value in specs.items():
        name = clean_text(str(key), report)
        if isinstance(value, str) or value is None:
            value = clean_text(value or "", report)
            if is_placeholder(value):
                report.add("placeholders", example=f"{name}: {value}" if value else f"{name}: (empty)")
                continue
        if not name:
            report.add("placeholders", example=f"(no name): {value}")
            continue
        if name in out:  # "Color" and "Color " name one specification: the first value stays
            report.add("repeats", example=f"{name}: {value}")
            continue
        out[name] = value
    return out


def product_values_clean(values: dict[str, Any]) -> tuple[dict[str, Any], CleaningReport]:
    """Clean the text of a product's values before they are saved.

    Args:
        values: any of ``title``, ``description``, ``brand`` (a name) and ``specifications``
            (a dict); other keys pass through unchanged. Absent keys stay absent.

    Returns:
        ``(clean_values, report)``: a new dict, and what each rule changed. A placeholder brand
        becomes ``""`` (no brand). Matching the brand to an existing spelling is done by
        ``shop.brands.brand_for_name``, which adds to the same report.
    """
    report = CleaningReport()
    out = dict(values)
    if "title" in values:
        out["title"] = clean_text(values["title"], report)
    if "description" in values:
        out["description"] = collapse_repeats(clean_text(values["description"], report, multiline=True), report)
    if "brand" in values and values["brand"] is not None:
        brand = clean_text(values["brand"], report)
        if brand and is_placeholder(brand):
            report.add("placeholders", example=f"brand: {brand}")
            brand = ""
        out["brand"] = brand
    if "specifications" in values:
        out["specifications"] = clean_specifications(values["specifications"], report)
    return out, report



def brand_key(name: str) -> str:
    """The spelling-insensitive key of a brand name: letters and digits only, case-folded, accents dropped.

    ``"FS Mini Klub"`` and ``"Fs Mini Klub"`` give ``"fsminiklub"``; ``"L Oreal"``, ``"Loreal"``
    and ``"L'Oréal"`` give ``"loreal"``. Latin accents are dropped; other scripts' vowel signs
    are kept. Empty for a name without letters or digits.
    """
    decomposed = unicodedata.normalize("NFKD", name or "").casefold()
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if _key_char(ch)))


def _key_char(ch: str) -> bool:
    # Latin accents (U+0300-U+036F) go; the vowel signs of Indic scripts (also marks) stay.
    if "\u0300" <= ch <= "\u036f":
        return False
    return ch.isalnum() or unicodedata.category(ch).startswith("M")
