"""Writes of click feedback: record impressions and clicks (through the guards).

* :func:`impression_record` runs when a results page is rendered, server-side; it returns a
  signed token the page hands back with each click. :func:`impression_record_for_page` stores
  the page only for a visitor already known; a first-time visitor's page travels in a deferred
  token instead and is stored when it is clicked (:mod:`search.clicks.visitors`).
* :func:`click_record` runs for every click (``sendBeacon`` or the redirect endpoint, see
  :mod:`search.clicks.views`) and applies every guard in :mod:`search.clicks.guards` and below.

Turning the events into click priors, and purging them, is :mod:`search.clicks.aggregates`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from search.backends.base import SearchBackendError, SearchFilters
from search.clicks import click_model, guards, visitors
from search.clicks.models import DiscardReason, EventDiscard, PhotoReference, SearchClick, SearchImpression
from search.clicks.selectors import PHOTO_REFS_GENERATION_KEY
from search.embedding import encoders
from search.params import whole_number
from shop.models import Product

logger = logging.getLogger(__name__)

#: Signing salt of impression tokens; changing it would void the tokens on pages already served.
TOKEN_SALT = "search.events.impression"
#: Results recorded per impression: a page is at most this long (SEARCH_PAGE_SIZE is 24).
MAX_RESULTS_PER_IMPRESSION = 100
#: Highest position a click may claim (MAX_PAGE 200 x 100 per page).
MAX_POSITION = 20_000

STATUS = {
    DiscardReason.MALFORMED: 400, DiscardReason.BAD_TOKEN: 400, DiscardReason.NOT_IN_IMPRESSION: 400,
    DiscardReason.POSITION_MISMATCH: 400, DiscardReason.UNKNOWN_IMPRESSION: 404, DiscardReason.UNKNOWN_PRODUCT: 404,
    DiscardReason.EXPIRED: 410, DiscardReason.BOT: 403, DiscardReason.SESSION_MISMATCH: 403,
    DiscardReason.DUPLICATE: 409, DiscardReason.RATE_SESSION: 429, DiscardReason.RATE_IP: 429,
    DiscardReason.PRODUCT_CAP: 429, DiscardReason.NETWORK_CAP: 429, DiscardReason.TOO_LARGE: 413,
}


def impression_token(impression_id: int) -> str:
    """Signed, URL-safe token naming an impression (``django.core.signing``, salted); the page sends it back with clicks."""
    return signing.dumps(int(impression_id), salt=TOKEN_SALT)


def impression_id_from_token(token: str) -> int | None:
    """The impression id in a token, or ``None`` if it was forged, altered or malformed."""
    if not isinstance(token, str) or not 0 < len(token) <= 200:
        return None
    try:
        value = signing.loads(token, salt=TOKEN_SALT)
    except signing.BadSignature:
        return None
    return value if isinstance(value, int) and value > 0 else None


def event_discard_count(*, kind: str, reason: str, now: datetime | None = None) -> None:
    """Count one discarded event of ``kind`` (``click``, ``impression``) for ``reason`` on today's row."""
    day = (now or timezone.now()).date()
    row, _ = EventDiscard.objects.get_or_create(day=day, kind=kind, reason=reason)
    EventDiscard.objects.filter(pk=row.pk).update(count=F("count") + 1)


# -- impressions -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordedImpression:
    """``impression`` is ``None`` when the page was not recorded (``reason`` says why); ``token`` goes into the page."""

    impression: SearchImpression | None
    token: str = ""
    reason: str = ""


def _filters_json(filters: SearchFilters | Mapping | None) -> dict:
    if filters is None:
        return {}
    if isinstance(filters, SearchFilters):
        data = asdict(filters)
        data["brands"] = list(filters.brands)
        return {k: v for k, v in data.items() if v not in (None, [], "")}
    return {str(k)[:50]: v for k, v in dict(filters).items()}


def impression_record(
    *,
    query: str,
    product_ids: Sequence[int],
    session_key: str,
    page: int = 1,
    per_page: int | None = None,
    total: int | None = None,
    filters: SearchFilters | Mapping | None = None,
    image_vector: np.ndarray | None = None,
    user_agent: str = "",
    ip: str = "",
    now: datetime | None = None,
) -> RecordedImpression:
    """Record one rendered results page.

    Args:
        query: the shopper's words (normalised again here into :func:`search.clicks.click_model.query_key`).
        product_ids: the page's products in display order (at most ``MAX_RESULTS_PER_IMPRESSION``).
        session_key: the shopper's session id (hashed with ``SECRET_KEY`` before storage).
        page, per_page: 1-based page and its size (positions are ``(page - 1) * per_page + i + 1``).
        total: number of results of the query (0 marks a zero-result query).
        filters: the filters in force (stored as JSON).
        image_vector: for a photo query, its ``(1280,)`` image vector (kept so a click can make it a reference).
        user_agent: for the bot check only; never stored.
        ip: the client's address: only the HMAC of its /24 or /64 network is stored
            (:func:`search.clicks.guards.network_hash`), so the aggregates can bound one network's weight.
        now: the event time (default: now).

    Returns:
        The impression and its token, or ``impression=None`` with the discard reason (bot, rate limit).
    """
    now = now or timezone.now()
    if guards.is_bot(user_agent):
        event_discard_count(kind="impression", reason=DiscardReason.BOT, now=now)
        return RecordedImpression(None, reason=DiscardReason.BOT)
    shash = guards.session_hash(session_key)
    window = settings.CLICK_RATE_WINDOW_S
    if guards.rate_limited("impression-session", shash, limit=settings.IMPRESSION_RATE_PER_SESSION, window_s=window, now=now):
        event_discard_count(kind="impression", reason=DiscardReason.RATE_SESSION, now=now)
        return RecordedImpression(None, reason=DiscardReason.RATE_SESSION)
    per_page = per_page or settings.SEARCH_PAGE_SIZE
    ids = [int(i) for i in list(product_ids)[:MAX_RESULTS_PER_IMPRESSION]]
    vector = None
    if image_vector is not None:
        vec = np.asarray(image_vector, dtype=np.float32).reshape(-1)
        if vec.shape == (encoders.image_dim(),) and np.isfinite(vec).all():
            vector = (vec / max(float(np.linalg.norm(vec)), 1e-12)).astype(np.float32).tobytes()
    imp = SearchImpression.objects.create(
        query=click_model.query_key(query), filters=_filters_json(filters), product_ids=ids, page=max(1, int(page)),
        offset=(max(1, int(page)) - 1) * per_page, total=len(ids) if total is None else int(total), session_hash=shash,
        network_hash=guards.network_hash(ip), created=now, is_image_query=image_vector is not None, image_vector=vector,
    )
    return RecordedImpression(imp, impression_token(imp.pk))


def impression_record_for_page(*, request, search, page) -> str:
    """Record the page a storefront view is about to render; returns the token for the template ("" if not recorded).

    A visitor already known (:func:`search.clicks.visitors.visitor_key`) gets an impression row.
    A first-time visitor gets no row and no session: the token is a deferred one carrying the
    page, and the view sets the visitor cookie (:func:`search.clicks.visitors.visitor_cookie_set`).

    Args:
        request: the ``HttpRequest`` (its cookies, session, user agent and address; ``GET["img"]``
            names the photo token of a photo search).
        search: the :class:`search.request.SearchRequest` that ran.
        page: the :class:`search.selectors.SearchPage` it returned.
    """
    if not hasattr(request, "session"):
        return ""
    user_agent = request.META.get("HTTP_USER_AGENT", "")
    image = getattr(search, "image", None)
    key = visitors.visitor_key(request)
    if key is None:
        if guards.is_bot(user_agent):
            event_discard_count(kind="impression", reason=DiscardReason.BOT)
            return ""
        per_page = page.per_page or settings.SEARCH_PAGE_SIZE
        return visitors.deferred_token_dumps({
            "v": visitors.visitor_issue(request), "q": click_model.query_key(search.text),
            "ids": [int(p.pk) for p in page.products][:MAX_RESULTS_PER_IMPRESSION], "p": max(1, int(page.page)),
            "o": (max(1, int(page.page)) - 1) * per_page, "n": int(page.total), "f": _filters_json(search.filters),
            "t": int(timezone.now().timestamp() * 1_000_000), "img": request.GET.get("img", "")[:40] if image is not None else None,
        })
    recorded = impression_record(
        query=search.text, product_ids=[p.pk for p in page.products], session_key=key,
        page=page.page, per_page=page.per_page, total=page.total, filters=search.filters,
        image_vector=None if image is None else image.features[0], user_agent=user_agent,
        ip=request.META.get("REMOTE_ADDR", ""),
    )
    return recorded.token


def _deferred_impression(token: str) -> SearchImpression | None:
    """The unsaved impression a deferred token carries (``None`` if the token is not a valid one)."""
    page = visitors.deferred_token_loads(token)
    if page is None:
        return None
    try:
        created = datetime.fromtimestamp(int(page["t"]) / 1_000_000, tz=UTC)
        ids = [int(i) for i in page["ids"]][:MAX_RESULTS_PER_IMPRESSION]
        imp = SearchImpression(
            query=str(page["q"])[:200], filters=page.get("f") or {}, product_ids=ids, page=int(page["p"]), offset=int(page["o"]),
            total=int(page["n"]), session_hash=guards.session_hash(page["v"]), created=created, is_image_query=page.get("img") is not None,
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    imp.photo_token = page.get("img") or ""
    return imp


def _impression_save(imp: SearchImpression) -> SearchImpression:
    """Store a deferred impression once (a second click on the same page finds the first's row)."""
    if imp.pk is not None:
        return imp
    stored = SearchImpression.objects.filter(session_hash=imp.session_hash, created=imp.created, query=imp.query).first()
    if stored is not None:
        return stored
    if imp.photo_token:
        from shop.query_photos import query_photo_load  # late: shop.query_photos imports the search backends

        try:
            features = query_photo_load(imp.photo_token)
        except SearchBackendError:  # the photo store is down: the impression keeps no vector
            features = None
        if features is not None:
            vec = np.asarray(features.features[0], dtype=np.float32)
            imp.image_vector = (vec / max(float(np.linalg.norm(vec)), 1e-12)).astype(np.float32).tobytes()
    imp.save()
    return imp


# -- clicks ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClickOutcome:
    """What happened to a click: ``counted``, else ``reason``; ``status`` is the HTTP status the endpoint answers."""

    counted: bool
    reason: str = ""
    status: int = 204
    click: SearchClick | None = None
    product: Product | None = None


def _as_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return whole_number(value, max_digits=12)
    return None


def _discarded(reason: str, now: datetime, product: Product | None = None, click: SearchClick | None = None) -> ClickOutcome:
    event_discard_count(kind="click", reason=reason, now=now)
    return ClickOutcome(False, reason, STATUS[DiscardReason(reason)], click, product)


def click_record(
    *,
    token: str,
    product_id,
    position,
    session_key: str,
    user_agent: str = "",
    ip: str = "",
    now: datetime | None = None,
) -> ClickOutcome:
    """Record a click on a result, counting it only if it passes every guard.

    Guards, in order (the first that fails decides the reason and the HTTP status):
    malformed ids or position (400), forged token (400), unknown impression or product (404),
    product not in that impression or at another position (400), impression older than
    ``CLICK_IMPRESSION_MAX_AGE_S`` (410), bot user agent (403), session over
    ``CLICK_RATE_PER_SESSION`` or IP over ``CLICK_RATE_PER_IP`` per ``CLICK_RATE_WINDOW_S`` (429),
    a session other than the impression's (403), a click already counted for this session, query
    and product within ``CLICK_DEDUP_WINDOW_S`` (409), the client's network (/24 or /64) over
    ``CLICK_NETWORK_PRODUCT_CAP`` counted clicks on the product per rate window, whatever its
    sessions (429 ``network_cap``), the product over ``CLICK_PRODUCT_CAP`` counted clicks per
    rate window (429). Discards before the session check are only counted in
    :class:`EventDiscard` (a flood cannot fill the table); the later ones are stored with
    ``counted=False`` too. A counted click after a photo query adds the query's vector as a
    reference for the product (the first counted click of an impression only).

    Args:
        token: the impression token from the page (:func:`impression_token`).
        product_id, position: the clicked product and its absolute 1-based position (ints or digit
            strings); ``position=None`` takes the position the impression showed it at (redirect links).
        session_key: the shopper's session id (hashed before use).
        user_agent, ip: for the bot check, the rate limits and the network cap; the address is never
            stored, only the HMAC of its network (:func:`search.clicks.guards.network_hash`).
        now: the event time (default: now).
    """
    now = now or timezone.now()
    pid, pos = _as_int(product_id), None if position is None else _as_int(position)
    if pid is None or pid <= 0 or (position is not None and (pos is None or not 1 <= pos <= MAX_POSITION)):
        return _discarded(DiscardReason.MALFORMED, now)
    imp_id = impression_id_from_token(token)
    if imp_id is None:
        imp = _deferred_impression(token)  # a first-time visitor's page, stored once it is clicked
        if imp is None:
            return _discarded(DiscardReason.BAD_TOKEN, now)
    else:
        imp = SearchImpression.objects.filter(pk=imp_id).first()
    if imp is None:
        return _discarded(DiscardReason.UNKNOWN_IMPRESSION, now)
    product = Product.objects.filter(pk=pid).first()
    if product is None:
        return _discarded(DiscardReason.UNKNOWN_PRODUCT, now)
    shown = imp.position_of(pid)
    if shown is None:
        return _discarded(DiscardReason.NOT_IN_IMPRESSION, now, product)
    if pos is None:  # the redirect link: the position is where the impression showed the product
        pos = shown
    if shown != pos:
        return _discarded(DiscardReason.POSITION_MISMATCH, now, product)
    if (now - imp.created).total_seconds() > settings.CLICK_IMPRESSION_MAX_AGE_S:
        return _discarded(DiscardReason.EXPIRED, now, product)
    if guards.is_bot(user_agent):
        return _discarded(DiscardReason.BOT, now, product)
    shash = guards.session_hash(session_key)
    window = settings.CLICK_RATE_WINDOW_S
    if guards.rate_limited("click-session", shash, limit=settings.CLICK_RATE_PER_SESSION, window_s=window, now=now):
        return _discarded(DiscardReason.RATE_SESSION, now, product)
    if ip and guards.rate_limited("click-ip", ip, limit=settings.CLICK_RATE_PER_IP, window_s=window, now=now):
        return _discarded(DiscardReason.RATE_IP, now, product)

    network = guards.network_hash(ip)

    def stored(reason: str) -> ClickOutcome:
        click = SearchClick.objects.create(
            impression=imp, product=product, position=pos, session_hash=shash, network_hash=network, created=now, counted=False,
            discard_reason=reason,
        )
        return _discarded(reason, now, product, click)

    if shash != imp.session_hash:
        # a deferred page clicked from another browser is only counted: it never becomes a row
        return stored(DiscardReason.SESSION_MISMATCH) if imp.pk is not None else _discarded(DiscardReason.SESSION_MISMATCH, now, product)
    if imp.pk is None:  # a deferred page, stored now: its network is the visitor's, who clicked it
        imp.network_hash = network
    imp = _impression_save(imp)
    recent = SearchClick.objects.filter(
        session_hash=shash, product=product, counted=True, impression__query=imp.query,
        created__gt=now - timedelta(seconds=settings.CLICK_DEDUP_WINDOW_S), created__lte=now,
    )
    if recent.exists():
        return stored(DiscardReason.DUPLICATE)
    capped = SearchClick.objects.filter(product=product, counted=True, created__gt=now - timedelta(seconds=window), created__lte=now)
    if network and settings.CLICK_NETWORK_PRODUCT_CAP > 0 and capped.filter(network_hash=network).count() >= settings.CLICK_NETWORK_PRODUCT_CAP:
        return stored(DiscardReason.NETWORK_CAP)
    if capped.count() >= settings.CLICK_PRODUCT_CAP:
        return stored(DiscardReason.PRODUCT_CAP)
    with transaction.atomic():
        click = SearchClick.objects.create(
            impression=imp, product=product, position=pos, session_hash=shash, network_hash=network, created=now, counted=True,
        )
        ref = _photo_reference_add(impression=imp, click=click, now=now)
    if ref is not None:
        photo_refs_generation_bump()
    return ClickOutcome(True, "", 204, click, product)


def _photo_reference_add(*, impression: SearchImpression, click: SearchClick, now: datetime) -> PhotoReference | None:
    """Keep a photo query's vector as a reference of the clicked product (first counted click per impression).

    A network (the session where the address is unknown) holds at most one reference per product:
    its newest replaces its older ones, so it can neither add many nor push out other shoppers'.
    """
    vector = impression.query_image_vector()
    if vector is None or PhotoReference.objects.filter(click__impression=impression).exists():
        return None
    ref = PhotoReference.objects.create(product_id=click.product_id, vector=vector.tobytes(), created=now, click=click)
    source = {"click__network_hash": click.network_hash} if click.network_hash else {"click__network_hash": "", "click__session_hash": click.session_hash}
    PhotoReference.objects.filter(product_id=click.product_id, **source).exclude(pk=ref.pk).delete()
    keep = settings.PHOTO_REFS_PER_PRODUCT
    stale = list(
        PhotoReference.objects.filter(product_id=click.product_id).order_by("-created", "-pk").values_list("pk", flat=True)[keep:]
    )
    if stale:
        PhotoReference.objects.filter(pk__in=stale).delete()
    return ref


def photo_refs_generation_bump() -> None:
    """Tell every process to reload the photo references (:data:`search.clicks.selectors.PHOTO_REFS_GENERATION_KEY`)."""
    cache.add(PHOTO_REFS_GENERATION_KEY, 0, timeout=None)
    try:
        cache.incr(PHOTO_REFS_GENERATION_KEY)
    except ValueError:
        cache.set(PHOTO_REFS_GENERATION_KEY, 1, timeout=None)
