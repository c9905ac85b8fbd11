"""Request-parameter primitives shared by the storefront, the REST API and the click endpoints.

Each returns ``None`` for a value it cannot read, so the caller raises its own error type
(``SearchRequestError`` for searches, DRF's ``ValidationError`` for the API) with the field.
"""

from __future__ import annotations

import re

import numpy as np

#: Words read as true / false in a query parameter (an empty value is false).
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


def whole_number(raw: str, *, minimum: int | None = None, maximum: int | None = None, max_digits: int = 9) -> int | None:
    """``raw`` as an int when it is 1 to ``max_digits`` ASCII digits within ``[minimum, maximum]``, else ``None``.

    ``str.isdigit`` alone accepts superscripts such as "²" that ``int()`` refuses, and ``int()``
    refuses strings over 4,300 digits; either would otherwise surface as a 500.
    """
    if not raw or len(raw) > max_digits or not (raw.isascii() and raw.isdigit()):
        return None
    number = int(raw)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        return None
    return number


def flag(raw: str) -> bool | None:
    """``raw`` (case and spaces ignored) as a bool by :data:`TRUE` / :data:`FALSE`, else ``None``."""
    value = (raw or "").strip().lower()
    if value in TRUE:
        return True
    return False if value in FALSE else None


#: A JSON string, escapes included, or an unterminated one running to the end (matched in one pass).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
#: Every byte but the four that open and close arrays and objects.
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_nesting(raw: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text ``raw``, found without parsing it.

    Strings are skipped (a bracket inside one does not count); the rest is reduced to its
    brackets and their running depth taken with numpy, so a megabyte costs a few milliseconds
    and no recursion. Python's ``json`` raises ``RecursionError`` (not ``ValueError``) on about
    1,000 levels; checking this first turns such a body into a plain 400.

    Returns:
        The deepest level (``0`` for a scalar, ``1`` for ``[1, 2]``, ``2`` for ``{"a": [1]}``);
        unbalanced text counts its opening brackets as they come.
    """
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_A_BRACKET)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())
