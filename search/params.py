"""Request-parameter primitives shared by the storefront, the REST API and the click endpoints.

Each returns ``None`` for a value it cannot read, so the caller raises its own error type
(``SearchRequestError`` for searches, DRF's ``ValidationError`` for the API) with the field.
"""

from __future__ import annotations

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
