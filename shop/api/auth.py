"""API tokens: exchange a username and password for a token that expires after ``API_TOKEN_TTL_HOURS``."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
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

TokenOut = inline_serializer("Token", {"token": serializers.CharField(), "expires_at": serializers.DateTimeField()})


class TokenView(APIView):
    """``POST``: a token for these credentials (a new one when the last has expired). ``DELETE``: revoke yours."""

    parser_classes = [BoundedJSONParser, FormParser]
    throttle_classes = [LoginThrottle]

    def get_permissions(self):
        return [IsAuthenticated()] if self.request.method == "DELETE" else [AllowAny()]

    @extend_schema(
        summary="Get an API token",
        request=AuthTokenSerializer,
        responses={200: TokenOut, 400: OpenApiResponse(ErrorSerializer, description="Wrong username or password."),
                   415: ErrorSerializer, 429: ErrorSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        if timezone.now() >= token_expires_at(token):
            token.delete()
            token = Token.objects.create(user=user)
        return Response({"token": token.key, "expires_at": token_expires_at(token)})

    @extend_schema(summary="Revoke your API token", responses={204: None, 401: ErrorSerializer})
    def delete(self, request: Request) -> Response:
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
