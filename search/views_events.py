"""Event endpoints: clicks on search results, by ``navigator.sendBeacon`` or by a redirect link.

``POST /events/click`` takes ``{"impression_id": <token>, "product_id": <int>, "position": <int>}``
(JSON, any content type, at most ``MAX_BODY_BYTES``) and answers 204 when the click counted, or
a 4xx with ``{"counted": false, "reason": ...}`` (see :data:`search.events.STATUS`).

CSRF: a beacon cannot set the ``X-CSRFToken`` header, so this one endpoint is exempt. What
stands in for the CSRF token is the impression token: a value signed with ``SECRET_KEY``
(``django.core.signing``) naming an impression recorded for *this* session, which another site
cannot read or forge; a click whose session differs from the impression's is not counted. The
endpoint changes nothing but click statistics, and every click passes the guards of
:func:`search.events.click_record`.

``GET /events/click/<token>/<product_id>/`` records the click the same way and redirects (302)
to the product page, so tracking works without JavaScript. The shopper always gets the product
page when the product exists (404 otherwise), whether or not the click counted.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from search.event_models import DiscardReason
from search.events import click_record, event_discard_count
from shop.models import Product

#: Largest click body accepted (bytes). A real beacon is about 150 bytes.
MAX_BODY_BYTES = 2048


def _session_key(request: HttpRequest) -> str:
    session = getattr(request, "session", None)
    return (session.session_key if session is not None else None) or ""


def _refused(reason: str, status: int) -> JsonResponse:
    return JsonResponse({"counted": False, "reason": reason}, status=status)


@csrf_exempt
@require_POST
@never_cache
def click_beacon(request: HttpRequest) -> HttpResponse:
    """``POST /events/click``: record a click sent by ``navigator.sendBeacon``."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    body = b"" if declared > MAX_BODY_BYTES else request.read(MAX_BODY_BYTES + 1)
    if declared > MAX_BODY_BYTES or len(body) > MAX_BODY_BYTES:
        event_discard_count(kind="click", reason=DiscardReason.TOO_LARGE)
        return _refused(DiscardReason.TOO_LARGE, 413)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
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


@require_GET
@never_cache
def click_redirect(request: HttpRequest, token: str, product_id: int) -> HttpResponse:
    """``GET /events/click/<token>/<product_id>/``: record the click, then 302 to the product page."""
    product = Product.objects.filter(pk=product_id).only("pk").first()
    if product is None:
        event_discard_count(kind="click", reason=DiscardReason.UNKNOWN_PRODUCT)
        return _refused(DiscardReason.UNKNOWN_PRODUCT, 404)
    click_record(
        token=token, product_id=product_id, position=None, session_key=_session_key(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""), ip=request.META.get("REMOTE_ADDR", ""),
    )
    return HttpResponseRedirect(product_url(product_id))


def product_url(product_id: int) -> str:
    """The storefront's product page (``shop:product``), or the home page while the storefront has none."""
    try:
        return reverse("shop:product", args=[product_id])
    except NoReverseMatch:
        return "/"


def click_url(token: str, product_id: int) -> str:
    """The redirect link for a result (for templates without JavaScript)."""
    return reverse("search_events:click_redirect", args=[token, product_id])
