"""Token authentication for the API: DRF tokens that expire ``API_TOKEN_TTL_HOURS`` after they were issued.

Named by ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``; kept apart from the token view
(:mod:`shop.api.auth`) because DRF imports this class while ``rest_framework.views`` loads.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


class TokenExpired(exceptions.AuthenticationFailed):
    default_code = "token_expired"


def token_expires_at(token: Token) -> datetime:
    """When ``token`` stops working: ``created + API_TOKEN_TTL_HOURS``."""
    return token.created + timedelta(hours=settings.API_TOKEN_TTL_HOURS)


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF token authentication whose tokens expire ``API_TOKEN_TTL_HOURS`` after they were issued.

    An expired token gets 401 with code ``token_expired`` and the time it expired; a new one
    comes from ``POST /api/auth/token/``.
    """

    def authenticate_credentials(self, key: str):
        user, token = super().authenticate_credentials(key)
        expires = token_expires_at(token)
        if timezone.now() >= expires:
            raise TokenExpired(
                f"The token expired at {expires.isoformat(timespec='seconds')}; get a new one from POST /api/auth/token/."
            )
        return user, token
