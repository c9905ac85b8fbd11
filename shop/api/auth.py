"""API tokens: exchange a username and password for a token that expires after ``API_TOKEN_TTL_HOURS``.

Every login issues a new key and revokes the previous one; ``POST /api/auth/token/rotate/`` does the
same for the token in use, ``DELETE /api/auth/token/`` revokes it, and a password change revokes
it (:mod:`shop.tokens`).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop.api.authentication import token_expires_at
from shop.api.errors import ErrorSerializer
from shop.api.parsers import BoundedJSONParser
from shop.api.throttles import LoginThrottle
from shop.tokens import token_issue, token_revoke

TokenOut = inline_serializer("Token", {"token": serializers.CharField(), "expires_at": serializers.DateTimeField()})


class TokenView(APIView):
    """``POST``: a new token for these credentials (the previous one is revoked). ``DELETE``: revoke yours."""

    parser_classes = [BoundedJSONParser, FormParser]
    throttle_classes = [LoginThrottle]

    def get_permissions(self):
        return [IsAuthenticated()] if self.request.method == "DELETE" else [AllowAny()]

    @extend_schema(
        summary="Get an API token",
        description="Each call issues a new token and revokes the one issued before (a token already handed out stops working).",
        request=AuthTokenSerializer,
        responses={200: TokenOut, 400: OpenApiResponse(ErrorSerializer, description="Wrong username or password."),
                   415: ErrorSerializer, 429: ErrorSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token = token_issue(serializer.validated_data["user"])
        return Response({"token": token.key, "expires_at": token_expires_at(token)})

    @extend_schema(summary="Revoke your API token", responses={204: None, 401: ErrorSerializer})
    def delete(self, request: Request) -> Response:
        token_revoke(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRotateView(APIView):
    """``POST``: replace the token in use by a new one (the old one stops working at once)."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [LoginThrottle]
    parser_classes = [BoundedJSONParser, FormParser]

    @extend_schema(
        summary="Rotate your API token",
        description="Issues a new token for the signed-in user and revokes the current one.",
        request=None,
        responses={200: TokenOut, 401: ErrorSerializer, 429: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        token = token_issue(request.user)
        return Response({"token": token.key, "expires_at": token_expires_at(token)})
