"""API rate limits (DRF throttles), each read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]``.

The counters live in the ``state`` cache (:mod:`shop.state`), where no flood of other entries
can evict them. If that store cannot be reached (Redis down) a request is let through and the
failure logged: an outage of the counters' store must not stop merchants' writes.
"""

from __future__ import annotations

import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from shop.state import STATE_ERRORS, state_cache

logger = logging.getLogger(__name__)


class _ScopedThrottle(SimpleRateThrottle):
    """A rate limit read from ``REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'][scope]`` at request time."""

    anonymous_only = False

    @property
    def cache(self):
        """The ``state`` cache (DRF's default would be the ``default`` cache, which culls live entries)."""
        return state_cache()

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except STATE_ERRORS:
            logger.exception("Rate limit %s not checked: its store cannot be reached; the request goes through", self.scope)
            return True

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            if self.anonymous_only:
                return None
            ident = f"user-{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class SearchAnonThrottle(_ScopedThrottle):
    """Text search by anonymous clients, per IP (``search_anon``)."""

    scope = "search_anon"
    anonymous_only = True


class PhotoSearchAnonThrottle(_ScopedThrottle):
    """Photo search by anonymous clients, per IP (``search_photo_anon``): an image encode costs ~50x a text query."""

    scope = "search_photo_anon"
    anonymous_only = True


class PhotoSearchUserThrottle(_ScopedThrottle):
    """Photo search by signed-in users, per user (``search_photo_user``)."""

    scope = "search_photo_user"


def photo_search_throttles() -> list[SimpleRateThrottle]:
    """The limits on a photo upload for search, shared by the API and the storefront's photo form."""
    return [PhotoSearchAnonThrottle(), PhotoSearchUserThrottle()]


class UploadThrottle(_ScopedThrottle):
    """Product, photo and bulk uploads, per user (``uploads``)."""

    scope = "uploads"


class LoginThrottle(_ScopedThrottle):
    """Token requests, per IP (``login``): slows password guessing."""

    scope = "login"

    def get_cache_key(self, request, view) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
