"""The one error body of the REST API, for every endpoint of every app.

Every error leaves the API as ``{"error": {"code": "...", "message": "...", "field": "..."}}``
(``field`` is empty when the error is not about one input), with the HTTP status telling the
kind: 400 bad input, 401 no or bad credentials, 403 not allowed, 404 no such object, 410 an
expired photo search, 413 too large a body, 415 wrong content type, 429 too many requests, 500
an error of ours, 503 search engine unavailable. An ``APIException`` with a ``field`` attribute
names that input in the body.

Three layers make sure of it for every path under :data:`API_PREFIXES`: DRF's
:func:`exception_handler` for what views raise and DRF knows; :class:`ApiErrorMiddleware` for
any other exception a view lets out (a bug: logged with its traceback, answered 500); and
:func:`error_response`, which the site's 400/403/404/500 handlers use for what fails before or
after a view (a request Django refuses while reading it, a middleware that breaks).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from mlmodels.images import ImageRejected
from search.backends.base import SearchUnavailable
from search.request import SearchRequestError

logger = logging.getLogger(__name__)

#: Paths whose every error answers the JSON error body (the REST API and the click events).
API_PREFIXES = ("/api/", "/events/")
#: The message of a 500: nothing about the cause (that goes to the log), what to do instead.
SERVER_ERROR = "Something went wrong on our side; nothing was changed by this request's failure. Try again in a minute."
#: Codes and messages for the statuses the site's error handlers answer.
_HANDLED = {
    400: ("bad_request", "The request could not be read (malformed, or over a size or field-count limit)."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    500: ("server_error", SERVER_ERROR),
}


def refused_request_message(exc: Exception | None) -> str:
    """Plain words for a request Django refused while reading it (a ``SuspiciousOperation``)."""
    kind = type(exc).__name__ if exc is not None else ""
    if kind == "RequestDataTooBig":
        return f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 1048576:.1f} MB; send less at once."
    if kind == "TooManyFieldsSent":
        return f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} parameters; send fewer."
    if kind == "DisallowedHost":
        return "This server does not answer for the host name the request was sent to; use the shop's own address."
    if kind == "TooManyFilesSent":
        return f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} files; send fewer."
    return _HANDLED[400][1]


def is_api_path(path: str) -> bool:
    """True for the paths whose errors answer the JSON error body (:data:`API_PREFIXES`)."""
    return path.startswith(API_PREFIXES)


def error_response(status_code: int, message: str = "") -> JsonResponse:
    """A plain Django ``JsonResponse`` with the error body for ``status_code`` (400, 403, 404 or 500)."""
    code, default = _HANDLED[status_code]
    return JsonResponse(error_body(code, message or default), status=status_code)


class ApiErrorMiddleware:
    """Under :data:`API_PREFIXES`, an exception a view lets out answers with the error body, never an HTML page.

    Django's own exceptions keep their meaning (``Http404`` 404, ``PermissionDenied`` 403,
    ``SuspiciousOperation`` 400); anything else is a bug: logged with its traceback on
    ``django.request`` and answered 500 with :data:`SERVER_ERROR`. Listed last in
    ``MIDDLEWARE``, so it is the first to see a view's exception.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> JsonResponse | None:
        if not is_api_path(request.path_info):
            return None
        if isinstance(exception, Http404):
            return error_response(404)
        if isinstance(exception, DjangoPermissionDenied):
            return error_response(403)
        if isinstance(exception, SuspiciousOperation):
            logging.getLogger("django.security").warning("%s on %s: %s", type(exception).__name__, request.path[:200], exception)
            return error_response(400, refused_request_message(exception))
        logging.getLogger("django.request").error(
            "Internal Server Error: %s", request.path[:500], exc_info=(type(exception), exception, exception.__traceback__)
        )
        return error_response(500)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable kind, e.g. invalid, not_found, token_expired, throttled.")
    message = serializers.CharField(help_text="What went wrong and how to fix it, for a person.")
    field = serializers.CharField(allow_blank=True, help_text="The input the error is about, or empty.")
    details = serializers.DictField(required=False, help_text="Every field's errors, when several inputs were invalid.")


class ErrorSerializer(serializers.Serializer):
    """Body of every 4xx/5xx answer (documented in the OpenAPI schema)."""

    error = ErrorDetailSerializer()


def error_body(code: str, message: str, field: str = "", details: dict | None = None) -> dict:
    body: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details:
        body["details"] = details
    return {"error": body}


def _first_message(detail: Any) -> tuple[str, str, str]:
    """(field, message, code) of the first error in a DRF ``detail`` structure."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            sub_field, message, code = _first_message(value)
            name = str(key) if key != api_settings.NON_FIELD_ERRORS_KEY else ""
            return (f"{name}.{sub_field}" if name and sub_field else name or sub_field), message, code
        return "", "Invalid input.", "invalid"
    if isinstance(detail, list):
        if not detail:
            return "", "Invalid input.", "invalid"
        first = detail[0]
        if isinstance(first, (dict, list)):
            return _first_message(first)
        return "", str(first), getattr(first, "code", "invalid") or "invalid"
    return "", str(detail), getattr(detail, "code", "invalid") or "invalid"


def _plain(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)


def _media_type_message(view: Any, request: Any) -> str:
    """Which body types the endpoint takes, for a request sent with another one."""
    taken = sorted({p.media_type for p in (view.get_parsers() if view is not None else [])})
    sent = getattr(request, "content_type", "") or "this type"
    if taken == ["multipart/form-data"]:
        return f"This endpoint takes multipart/form-data (a form carrying the file), not {sent}; e.g. curl -F 'name=@file'."
    types = " or ".join([", ".join(taken[:-1]), taken[-1]] if len(taken) > 1 else taken) or "another body type"
    return f"This endpoint takes {types}, not {sent}."


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: turn any known error into the one error body.

    Search and photo errors raised by the shared search code (``SearchRequestError``,
    ``ImageRejected``, ``SearchUnavailable``) map to 400/400/503. Unknown exceptions return
    ``None`` so Django logs them and answers 500 (a bug to fix, never an expected outcome).
    """
    if isinstance(exc, SearchRequestError):
        code = "image_rejected" if exc.field == "image" else "invalid"
        return Response(error_body(code, exc.reason, exc.field), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ImageRejected):
        return Response(error_body("image_rejected", exc.reason, "image"), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SearchUnavailable):
        logger.warning("Search unavailable: %s", exc)
        return Response(
            error_body("search_unavailable", "Search is unavailable for a moment; try again in a few seconds."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"},
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("bad_request", refused_request_message(exc)), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if not isinstance(exc, exceptions.APIException):
        return None

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = _first_message(exc.detail)
        details = _plain(exc.detail) if isinstance(exc.detail, dict) and len(exc.detail) > 1 else None
        return Response(error_body(code, message, field, details), status=exc.status_code, headers=headers)
    _, message, code = _first_message(exc.detail)
    if isinstance(exc, exceptions.NotAuthenticated):
        message = "Authentication credentials were not provided: send 'Authorization: Token <key>' (see POST /api/auth/token/) or log in."
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        message = _media_type_message(context.get("view"), context.get("request"))
    elif isinstance(exc, exceptions.MethodNotAllowed):
        allowed = [m for m in getattr(context.get("view"), "allowed_methods", []) if m not in ("OPTIONS", "HEAD")]
        message = f"This address does not take {context['request'].method if context.get('request') else 'that method'}" + (
            f"; use {' or '.join(allowed)}." if allowed else ".")
    elif isinstance(exc, exceptions.ParseError) and message.startswith("Multipart form parse error"):
        message = ("The multipart body could not be read (its boundary is missing or does not match the Content-Type header); "
                   "let your HTTP client build the multipart body, e.g. curl -F 'name=@file'.")
    elif isinstance(exc, exceptions.NotFound) and message.startswith("No ") and message.endswith(" matches the given query."):
        message = f"There is no {message[3:-len(' matches the given query.')].lower()} with that id."
    elif isinstance(exc, exceptions.Throttled):
        message = "Too many requests from you in a short time; wait a moment and try again."
        if exc.wait:
            seconds = max(1, math.ceil(exc.wait))
            message = f"Too many requests from you in a short time; try again in {seconds} second{'s' if seconds != 1 else ''}."
    code = exc.get_codes() if isinstance(exc.get_codes(), str) else code
    return Response(error_body(code, message, getattr(exc, "field", "")), status=exc.status_code, headers=headers)
