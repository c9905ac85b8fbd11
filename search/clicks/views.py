"""Event endpoints: clicks on search results, by ``navigator.sendBeacon`` or by a redirect link.

``POST /events/click`` takes ``{"impression_id": <token>, "product_id": <int>, "position": <int>}``
(JSON, any content type, at most ``MAX_BODY_BYTES``, nested at most ``API_MAX_JSON_DEPTH`` levels:
checked before parsing) and answers 204 when the click counted, or
a 4xx with ``{"counted": false, "reason": ...}`` (see :data:`search.clicks.services.STATUS`).

CSRF: a beacon cannot set the ``X-CSRFToken`` header, so this one endpoint is exempt. What
stands in for the CSRF token is the impression token: a value signed with ``SECRET_KEY``
(``django.core.signing``) naming an impression recorded for *this* session, which another site
cannot read or forge; a click whose session differs from the impression's is not counted. The
endpoint changes nothing but click statistics, and every click passes the guards of
:func:`search.clicks.services.click_record`.

``GET /events/click/<token>/<product_id>/`` records the click the same way and redirects (302)
to the product page, so tracking works without JavaScript. The shopper always gets the product
page when the product exists (404 otherwise), whether or not the click counted.

Both are DRF views only so that drf-spectacular documents them in ``/api/schema/``; every DRF
layer that would change what a browser gets is switched off (see :class:`EventView`).
"""

from __future__ import annotations

import json
from collections import defaultdict

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from search.clicks.models import DiscardReason
from search.clicks.services import MAX_POSITION, STATUS, click_record, event_discard_count
from search.clicks.visitors import MAX_DEFERRED_TOKEN_CHARS, visitor_key
from search.params import json_nesting, whole_number
from shop.models import Product

#: Largest click body accepted (bytes). A real beacon is about 150 bytes.
MAX_BODY_BYTES = 2048


class ClickSerializer(serializers.Serializer):
    """A click as ``search/static/search/clicks.js`` beacons it (documentation only; the view parses the raw body)."""

    impression_id = serializers.CharField(
        max_length=MAX_DEFERRED_TOKEN_CHARS, help_text="The results page's impression token (the grid's data-impression).",
    )
    product_id = serializers.IntegerField(min_value=1, help_text="The clicked product.")
    position = serializers.IntegerField(
        min_value=1, max_value=MAX_POSITION, required=False, allow_null=True,
        help_text="1-based position on the results, counted across pages (page offset + place on the page).",
    )


class ClickRefusedSerializer(serializers.Serializer):
    """The answer for a click that did not count."""

    counted = serializers.BooleanField(help_text="Always false.")
    reason = serializers.ChoiceField(choices=DiscardReason.choices, help_text="Why the click did not count.")


def _refusals(*statuses: int) -> dict[int, OpenApiResponse]:
    """Schema responses for click refusals, each listing the reasons that answer with its status."""
    reasons = defaultdict(list)
    for reason, status in STATUS.items():
        reasons[status].append(reason.value)
    return {
        status: OpenApiResponse(ClickRefusedSerializer, description="Not counted; `reason` is one of: " + ", ".join(sorted(reasons[status])) + ".")
        for status in statuses
    }


class AnyAccept(BaseContentNegotiation):
    """Ignore ``Accept``: a browser following the redirect link may accept only text/html, and a beacon reads no answer."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class EventView(APIView):
    """An event endpoint behaving as a plain Django view would.

    No DRF authentication (``SessionAuthentication`` would demand a CSRF token that a beacon
    cannot send; the signed impression token stands in, see the module docstring), no DRF rate
    limits (:mod:`search.clicks.guards` has its own, per session and IP), no body parsing (the views
    read the raw body, size first), no ``Accept`` negotiation; never cached.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    parser_classes: list = []
    content_negotiation_class = AnyAccept

    @method_decorator(never_cache)
    def dispatch(self, request, *args, **kwargs):
        return super().dispatch(request, *args, **kwargs)


def _session_key(request: Request) -> str:
    """The visitor's id for click feedback (visitor cookie or stored session, see :mod:`search.clicks.visitors`)."""
    return visitor_key(request) or ""


def _refused(reason: str, status: int) -> JsonResponse:
    return JsonResponse({"counted": False, "reason": reason}, status=status)


class ClickBeaconView(EventView):
    """``POST /events/click``: record a click sent by ``navigator.sendBeacon``."""

    http_method_names = ["post"]

    @extend_schema(
        operation_id="click_record",
        summary="Record a click on a search result (navigator.sendBeacon)",
        description=(
            "The body is the JSON object below, sent with any content type (sendBeacon sends text/plain), "
            f"at most {MAX_BODY_BYTES} bytes. No CSRF token: the impression token, signed and bound to the "
            "session that saw the results, stands in for it. Every click passes the abuse guards "
            "(docs/clicks.md); one that does not count answers `{\"counted\": false, \"reason\": ...}`."
        ),
        request={"application/json": ClickSerializer, "text/plain": OpenApiTypes.STR},
        responses={
            204: OpenApiResponse(description="The click counted."),
            **_refusals(400, 403, 404, 409, 410, 413, 429),
        },
        tags=["events"],
    )
    def post(self, request: Request) -> HttpResponse:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        body = b"" if declared > MAX_BODY_BYTES else request.read(MAX_BODY_BYTES + 1)
        if declared > MAX_BODY_BYTES or len(body) > MAX_BODY_BYTES:
            event_discard_count(kind="click", reason=DiscardReason.TOO_LARGE)
            return _refused(DiscardReason.TOO_LARGE, 413)
        try:  # nesting first: json.loads raises RecursionError, not ValueError, on ~1,000 levels
            data = json.loads(body.decode("utf-8")) if json_nesting(body) <= settings.API_MAX_JSON_DEPTH else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("impression_id"), str):
            event_discard_count(kind="click", reason=DiscardReason.MALFORMED)
            return _refused(DiscardReason.MALFORMED, 400)
        outcome = click_record(
            token=data["impression_id"], product_id=data.get("product_id"), position=data.get("position"),
            session_key=_session_key(request), user_agent=request.META.get("HTTP_USER_AGENT", ""),
            ip=request.META.get("REMOTE_ADDR", ""),
        )
        if outcome.counted:
            return HttpResponse(status=204)
        return _refused(outcome.reason, outcome.status)


class ClickRedirectView(EventView):
    """``GET /events/click/<token>/<product_id>/``: record the click, then 302 to the product page."""

    http_method_names = ["get"]  # not HEAD: link prefetchers would count clicks

    @extend_schema(
        operation_id="click_redirect",
        summary="Record a click on a search result, then go to the product (links without JavaScript)",
        description="Redirects to the product page whether or not the click counted (the guards of POST /events/click apply).",
        parameters=[
            OpenApiParameter("token", str, OpenApiParameter.PATH, pattern=rf"^[A-Za-z0-9_:.-]{{1,{MAX_DEFERRED_TOKEN_CHARS}}}$",
                             description="The results page's impression token."),
            OpenApiParameter("product_id", {"type": "integer", "minimum": 1}, OpenApiParameter.PATH, description="The clicked product."),
        ],
        responses={
            302: OpenApiResponse(description="To the product page (Location header)."),
            404: OpenApiResponse(ClickRefusedSerializer, description="No such product (`reason` unknown_product)."),
        },
        tags=["events"],
    )
    def get(self, request: Request, token: str, product_id: str) -> HttpResponse:
        pk = whole_number(product_id, max_digits=18)  # below 2**63
        product = Product.objects.filter(pk=pk).only("pk").first() if pk is not None else None
        if product is None:
            event_discard_count(kind="click", reason=DiscardReason.UNKNOWN_PRODUCT)
            return _refused(DiscardReason.UNKNOWN_PRODUCT, 404)
        click_record(
            token=token, product_id=product.pk, position=None, session_key=_session_key(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""), ip=request.META.get("REMOTE_ADDR", ""),
        )
        return HttpResponseRedirect(product_url(product.pk))


def product_url(product_id: int) -> str:
    """The storefront's product page (``shop:product``), or the home page while the storefront has none."""
    try:
        return reverse("shop:product", args=[product_id])
    except NoReverseMatch:
        return "/"


def click_url(token: str, product_id: int) -> str:
    """The redirect link for a result (for templates without JavaScript)."""
    return reverse("search_events:click_redirect", args=[token, product_id])
