"""Who a shopper is for click feedback, and results pages that cost no row until they are clicked.

A results page is stored as an impression row only for a visitor already known: one with the
visitor cookie from an earlier page (:data:`VISITOR_COOKIE`, a random id signed with
``SECRET_KEY``), or with a stored session (signed in). A visitor seen for the first time (a
browser's first results page, and every request of a cookie-less flood) gets no session and no
row: the page answers with the cookie and a *deferred* impression token, which carries the page
itself (query key, product ids, offset, total, filters, time and, for a photo search, its photo
token) signed with ``SECRET_KEY`` and bound to the new visitor id. A click that brings that
token back with that cookie writes the impression and the click together
(:func:`search.clicks.services.click_record`); a page nobody clicks leaves nothing behind.

Neither the visitor id nor the session id is stored: both are used as an HMAC
(:func:`search.clicks.guards.session_hash`).
"""

from __future__ import annotations

import re
import secrets

from django.conf import settings
from django.core import signing

#: The cookie naming a visitor for click feedback (a random id; no server row behind it).
VISITOR_COOKIE = "bazaar_visitor"
_VISITOR_SALT = "search.clicks.visitor"
_VISITOR_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
#: Signing salt of deferred impression tokens (other than the salt of tokens naming a row).
DEFERRED_SALT = "search.clicks.deferred-impression"
#: Longest deferred token accepted or issued (a page of 24 results with a long query and filters is ~600).
MAX_DEFERRED_TOKEN_CHARS = 1800
#: Request attribute holding a visitor id issued while handling the request (the cookie to set).
_NEW_VISITOR_ATTR = "_click_visitor_new"


def visitor_key(request) -> str | None:
    """The id click feedback knows this visitor by, or ``None`` for a visitor seen for the first time.

    The visitor cookie's id (``"visitor:<id>"``) when the request carries a valid signed one,
    else the key of a session that exists in the session store (a cookie naming no stored
    session does not count); never creates a session.
    """
    visitor = request.get_signed_cookie(VISITOR_COOKIE, default=None, salt=_VISITOR_SALT)
    if visitor and _VISITOR_RE.match(visitor):
        return f"visitor:{visitor}"
    issued = getattr(request, _NEW_VISITOR_ATTR, None)
    if issued:
        return f"visitor:{issued}"
    session = getattr(request, "session", None)
    if session is None:
        return None
    session.keys()  # loads the session: a key the store does not hold is dropped here
    return session.session_key or None


def visitor_issue(request) -> str:
    """A new visitor id for this request's answer (:func:`visitor_cookie_set` sends it); returns ``"visitor:<id>"``."""
    visitor = getattr(request, _NEW_VISITOR_ATTR, None) or secrets.token_urlsafe(16)
    setattr(request, _NEW_VISITOR_ATTR, visitor)
    return f"visitor:{visitor}"


def visitor_cookie_set(request, response) -> None:
    """Set the visitor cookie on ``response`` if this request issued a visitor id (HttpOnly, SameSite=Lax,
    for ``SESSION_COOKIE_AGE`` seconds, HTTPS-only where the session cookie is)."""
    visitor = getattr(request, _NEW_VISITOR_ATTR, None)
    if visitor:
        response.set_signed_cookie(
            VISITOR_COOKIE, visitor, salt=_VISITOR_SALT, max_age=settings.SESSION_COOKIE_AGE, httponly=True,
            samesite="Lax", secure=settings.SESSION_COOKIE_SECURE,
        )


def deferred_token_dumps(page: dict) -> str:
    """Sign a results page (a JSON-able dict naming its visitor) into a URL-safe token; ``""`` if it
    would pass :data:`MAX_DEFERRED_TOKEN_CHARS` even without its filters (the page is then not tracked)."""
    token = signing.dumps(page, salt=DEFERRED_SALT, compress=True)
    if len(token) > MAX_DEFERRED_TOKEN_CHARS and page.get("f"):
        token = signing.dumps({**page, "f": {}}, salt=DEFERRED_SALT, compress=True)
    return token if len(token) <= MAX_DEFERRED_TOKEN_CHARS else ""


def deferred_token_loads(token: str) -> dict | None:
    """The page in a deferred token, or ``None`` if the token was forged, altered, malformed or too long."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_DEFERRED_TOKEN_CHARS:
        return None
    try:
        page = signing.loads(token, salt=DEFERRED_SALT)
    except signing.BadSignature:
        return None
    return page if isinstance(page, dict) and isinstance(page.get("v"), str) and isinstance(page.get("ids"), list) else None
