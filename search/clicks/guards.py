"""Abuse guards for search events: hashed session ids, bot user agents, rate limits.

The rate limits count in the ``state`` cache (shared by every process and never culled to make
room, see :mod:`shop.state`), in fixed windows keyed by ``floor(now / window)``, so the
simulation's clock works as well as the wall clock. If that store cannot be reached, an event
is not limited (and the failure is logged). An IP address is only ever used here, as an HMAC in
a cache key that expires with its window, and as the HMAC of its network (:func:`network_hash`):
never written to the database or a log in the clear.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
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


#: Prefix lengths of a "network": what one subscriber, office or cloud tenant usually holds.
IPV4_NETWORK_PREFIX = 24
IPV6_NETWORK_PREFIX = 64


def network_of(ip: str | None) -> str:
    """The client's network in CIDR form: the /24 of an IPv4 address, the /64 of an IPv6 one.

    An IPv4-mapped IPv6 address (``::ffff:192.0.2.7``) is its IPv4 address. ``""`` for an empty
    or unparsable address (a scope id such as ``%eth0`` is dropped first).

    Example: ``network_of("192.0.2.77") == "192.0.2.0/24"``, ``network_of("2001:db8::1") == "2001:db8::/64"``.
    """
    text = (ip or "").strip().split("%", 1)[0][:64]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_NETWORK_PREFIX if address.version == 4 else IPV6_NETWORK_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def network_hash(ip: str | None) -> str:
    """HMAC-SHA256 (keyed with ``SECRET_KEY``, 64 hex characters) of the client's network (:func:`network_of`);
    ``""`` when the address is unknown. Stored on impressions and clicks; the address itself never is."""
    network = network_of(ip)
    return _hmac(network, "search-network") if network else ""


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
