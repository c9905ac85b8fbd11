"""Abuse guards for search events: hashed session ids, bot user agents, rate limits.

The rate limits count in the ``state`` cache (shared by every process and never culled to make
room, see :mod:`shop.state`), in fixed windows keyed by ``floor(now / window)``, so the
simulation's clock works as well as the wall clock. If that store cannot be reached, an event
is not limited (and the failure is logged). An IP address is only ever used here, as an HMAC in a cache key that expires with its
window: it is never written to the database or a log.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from datetime import datetime

from crawlerdetect import CrawlerDetect
from django.conf import settings

from shop.state import STATE_ERRORS, state_cache

logger = logging.getLogger(__name__)

#: Longest user agent looked at; real browsers send 100-300 characters.
MAX_USER_AGENT_CHARS = 512


def _hmac(value: str, purpose: str) -> str:
    key = f"{settings.SECRET_KEY}:{purpose}".encode()
    return hmac.new(key, value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def session_hash(session_key: str) -> str:
    """HMAC-SHA256 of a session id keyed with ``SECRET_KEY`` (64 hex characters); the id itself is never stored."""
    return _hmac(session_key or "", "search-session")


@functools.lru_cache(maxsize=1)
def _detector() -> CrawlerDetect:
    return CrawlerDetect()


def is_bot(user_agent: str | None) -> bool:
    """True for known crawlers, scrapers and HTTP libraries (the ``crawlerdetect`` list) and for an empty user agent."""
    ua = (user_agent or "").strip()[:MAX_USER_AGENT_CHARS]
    if not ua:
        return True
    return bool(_detector().isCrawler(ua))


def rate_limited(scope: str, ident: str, *, limit: int, window_s: int, now: datetime) -> bool:
    """Count one event for ``(scope, ident)`` in the current window; True once the count passes ``limit``.

    Args:
        scope: e.g. ``"click-session"``, ``"click-ip"``.
        ident: what is limited (a session hash, an IP address: hashed here before it is used as a key).
        limit: events allowed per window (``<= 0`` disables the limit).
        window_s: window length in seconds.
        now: the event's time.
    """
    if limit <= 0:
        return False
    bucket = int(now.timestamp() // window_s)
    key = f"search-rate:{scope}:{_hmac(ident, 'rate')[:32]}:{bucket}"
    cache = state_cache()
    try:
        cache.add(key, 0, timeout=window_s * 2)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window_s * 2)
            count = 1
    except STATE_ERRORS:
        logger.exception("Rate limit %s not checked: its store cannot be reached", scope)
        return False
    return count > limit
