"""Storefront pages: home, search (words, photo, filters), product page, and the error pages.

Views are thin: they parse with ``search.request``, read with the selectors and render. Every
bad input becomes a page with the reason (HTTP 400); an engine that cannot answer becomes a
"temporarily unavailable" page (HTTP 503); nothing a shopper sends can cause a 500.
"""

from __future__ import annotations

import logging
import math
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, HttpResponseServerError
from django.shortcuts import render
from django.template import loader
from django.urls import reverse
from django.views import defaults
from django.views.decorators.http import require_http_methods, require_safe

from search.backends.base import SearchBackendError
from search.clicks.services import impression_record_for_page
from search.clicks.visitors import visitor_cookie_set
from search.query import normalise_query
from search.request import SearchRequestError, decode_query_photo, parse_search_request
from search.selectors import SearchPage, similar_products
from shop import search_ui
from shop.api.errors import error_response, is_api_path, refused_request_message
from shop.api.throttles import photo_search_throttles
from shop.models import Category
from shop.query_photos import query_photo_load, query_photo_preview, query_photo_preview_load, query_photo_store, query_photo_ttl
from shop.selectors import category_tiles, product_get, products_top_rated

logger = logging.getLogger(__name__)

PHOTO_EXPIRED = "Your photo search expired; upload the photo again."
NO_PHOTO = "Choose a photo to search with (JPEG, PNG, WebP, GIF, BMP or TIFF)."
UNAVAILABLE = "Search is temporarily unavailable. Please try again in a minute."
TOO_MANY_PHOTOS = "Too many photo searches from here in the last minute: try again in {seconds} s, or search by words."
#: "Looks similar" products on a product page: one row of the grid on a desktop screen.
SIMILAR_LIMIT = 6
#: Longest query echoed back into the search box on an error page (the rest is dropped).
ECHO_CHARS = 300


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """Search box with photo upload, category tiles and the best-rated products."""
    return render(request, "shop/home.html", {"tiles": category_tiles(), "top_rated": products_top_rated()})


@require_safe
def search(request: HttpRequest) -> HttpResponse:
    """``/search/?q=&img=&category=&brand=&price_min=&price_max=&sort=&page=``: one page of results."""
    state = search_ui.SearchState(request.GET)
    image = None
    if state.get("img"):
        try:
            image = query_photo_load(state.get("img"))
        except SearchBackendError:  # the photo store cannot be reached
            return _search_error(request, state, UNAVAILABLE, status=503)
        if image is None:
            return _search_error(request, state, PHOTO_EXPIRED, status=400, expired_photo=True)
    try:
        search_request = parse_search_request(request.GET, image=image)
        page = search_request.run()
    except SearchRequestError as exc:
        return _search_error(request, state, exc.reason, status=400)
    except SearchBackendError:
        logger.exception("Search failed for %r", request.get_full_path()[:500])
        return _search_error(request, state, UNAVAILABLE, status=503)
    context = _results_context(request, state, page)
    # -- click feedback: record what this shopper was shown; clicks come back with the token --
    context["impression"] = impression_record_for_page(request=request, search=search_request, page=page)
    context["impression_offset"] = (page.page - 1) * page.per_page
    response = render(request, "shop/search.html", context)
    visitor_cookie_set(request, response)  # a first-time visitor's id: no session, no row (search.clicks.visitors)
    return response


@require_http_methods(["GET", "HEAD", "POST"])
def search_photo(request: HttpRequest) -> HttpResponse:
    """``POST /search/photo/`` (multipart ``image``, optional ``q``): encode the photo, then show results.

    Only the photo's features are kept (see ``shop.query_photos``); the browser is redirected to
    ``/search/?img=<token>&q=...`` so the results can be paged, sorted and shared for an hour.
    A GET (a bookmark, a reload) goes to the photo upload form on the home page.
    """
    if request.method != "POST":
        return HttpResponseRedirect(reverse("shop:home") + "#photo-search")
    state = search_ui.SearchState(request.POST)
    wait = photo_search_wait(request)
    if wait is not None:  # the API's photo-search limits, one budget per IP (anonymous) or user
        response = _search_error(request, state, TOO_MANY_PHOTOS.format(seconds=wait), status=429)
        response["Retry-After"] = str(wait)
        return response
    upload = request.FILES.get("image")
    if upload is None:
        return _search_error(request, state, NO_PHOTO, status=400)
    reason = getattr(upload, "rejected_reason", None)
    if reason:
        return _search_error(request, state, reason, status=400)
    data = upload.read(settings.MAX_IMAGE_BYTES + 1)
    try:
        features = decode_query_photo(data)
    except SearchRequestError as exc:
        return _search_error(request, state, exc.reason, status=400)
    try:
        params = [("img", query_photo_store(features, preview=query_photo_preview(data)))]
    except SearchBackendError:  # the photo store cannot be reached
        return _search_error(request, state, UNAVAILABLE, status=503)
    params += [(k, v) for k, v in state.hidden_fields("img", "explain") if k in ("q", "category", "brand")]
    return HttpResponseRedirect(f"{reverse('shop:search')}?{urlencode(params)}")


@require_safe
def query_photo(request: HttpRequest, token: str) -> HttpResponse:
    """``/search/photo/<token>.jpg``: the small preview of a shopper's query photo, for the photo chip.

    Raises:
        Http404: the token is malformed, unknown or expired (or the photo had no preview).
    """
    try:
        preview = query_photo_preview_load(token)
    except SearchBackendError:  # the photo store cannot be reached: the chip shows its icon
        return HttpResponse(status=503)
    if preview is None:
        raise Http404("This photo search has expired.")
    response = HttpResponse(preview, content_type="image/jpeg")
    response["Cache-Control"] = f"private, max-age={query_photo_ttl()}"
    return response


def photo_search_wait(request: HttpRequest) -> int | None:
    """Seconds to wait before another photo search (``None``: go ahead), by the REST API's photo
    throttles (``search_photo_anon`` per IP, ``search_photo_user`` per user), so the storefront form
    and the API share one budget. An allowed request is counted."""
    for throttle in photo_search_throttles():
        if not throttle.allow_request(request, None):
            return max(1, math.ceil(throttle.wait() or 1))
    return None


@require_safe
def product_detail(request: HttpRequest, product_id: int) -> HttpResponse:
    """``/p/<id>/``: photos, price, breadcrumb, description, specifications, "Looks similar"."""
    product = product_get(product_id=product_id)
    try:
        similar = similar_products(product=product, limit=SIMILAR_LIMIT)
    except SearchBackendError:
        logger.exception("Looks-similar failed for product %s", product.pk)
        similar = []
    crumbs = []
    if product.category:
        for node in product.category.ancestors_and_self():
            crumbs.append(search_ui.Link(node.name, f"{reverse('shop:search')}?{urlencode({'category': node.path})}"))
    return render(request, "shop/product.html", {
        "product": product,
        "images": list(product.images.all()),
        "crumbs": crumbs,
        "specifications": sorted((product.specifications or {}).items()) if isinstance(product.specifications, dict) else [],
        "similar": similar,
    })


def _results_context(request: HttpRequest, state: search_ui.SearchState, page: SearchPage) -> dict:
    crumbs, categories = search_ui.category_links(state, page)
    first, last = search_ui.result_range(page)
    show_explain = state.get("explain") == "1"
    if show_explain:
        for product in page.products:
            product.explain_rows = search_ui.explain_rows(product.search_explain)
    return {
        "state": state,
        "header_q": normalise_query(state.q)[:ECHO_CHARS],
        "page": page,
        "photo_search": bool(state.get("img")),
        "photo_token": state.get("img"),
        "photo_preview": bool(state.get("img")) and query_photo_preview_load(state.get("img")) is not None,
        "remove_photo_url": _without_photo_url(state),
        "remove_words_url": state.url(q=None),
        "category_crumbs": crumbs,
        "category_links": categories,
        "brand_links": search_ui.brand_links(state, page),
        "price_links": search_ui.price_links(state, page),
        "active_filters": search_ui.active_filters(state),
        "sort_options": search_ui.sort_options(state),
        "sort_hidden": state.hidden_fields("sort"),
        "price_hidden": state.hidden_fields("price_min", "price_max"),
        "page_links": search_ui.page_links(state, page),
        "prev_url": state.page_url(page.page - 1) if page.page > 1 else "",
        "next_url": state.page_url(page.page + 1) if page.page < page.num_pages else "",
        "first": first,
        "last": last,
        "show_explain": show_explain,
        "explain_toggle_url": state.url(explain=None if show_explain else "1"),
        "search_instead_url": state.url(autocorrect="false"),
        "did_you_mean_url": state.url(q=page.suggestion, autocorrect=None) if page.suggestion else "",
        "can_explain": show_explain or request.user.is_staff,
    }


def _without_photo_url(state: search_ui.SearchState) -> str:
    if state.get("q") or state.get("category") or state.brands or state.get("price_min") or state.get("price_max"):
        return state.url(img=None)
    return reverse("shop:home")


def _search_error(request: HttpRequest, state: search_ui.SearchState, reason: str, *, status: int, expired_photo: bool = False) -> HttpResponse:
    context = {
        "state": state,
        "header_q": normalise_query(state.q)[:ECHO_CHARS],
        "error": reason,
        "unavailable": status == 503,
        "expired_photo": expired_photo,
        "root_categories": Category.objects.filter(parent__isnull=True) if status != 503 else [],
    }
    return render(request, "shop/search_error.html", context, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 for requests Django refuses before a view runs (e.g. form data over ``DATA_UPLOAD_MAX_MEMORY_SIZE``)."""
    if is_api_path(request.path_info):
        return error_response(400, refused_request_message(exception))
    reason = "We could not read what your browser sent. Go back, reload the page and try again."
    if exception is not None and "RequestDataTooBig" in type(exception).__name__:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 1048576
        reason = f"The form data is larger than {limit:.1f} MB. Photos go in the photo field; keep the words short."
    return render(request, "shop/error.html", {"title": "Something was wrong with that request", "reason": reason}, status=400)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path_info):
        return error_response(404)
    return render(request, "shop/error.html", {
        "title": "Page not found",
        "reason": "We could not find that page. It may have been removed, or the link is mistyped.",
    }, status=404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403: the error body under /api/ and /events/, Django's plain page elsewhere."""
    if is_api_path(request.path_info):
        return error_response(403)
    return defaults.permission_denied(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """403 for a form the CSRF check refused (``CSRF_FAILURE_VIEW``): the shop's page, in plain words."""
    if is_api_path(request.path_info):
        return error_response(403, "The request failed its CSRF check: send the CSRF token with a session login, or use an API token.")
    return render(request, "shop/error.html", {
        "title": "This form has expired",
        "reason": "Reload the page and send the form again. If it keeps happening, let your browser accept this shop's cookies.",
    }, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    """500: a static page (no database, no context processors) so it renders whatever broke; the
    error body under /api/ and /events/."""
    if is_api_path(request.path_info):
        return error_response(500)
    return HttpResponseServerError(loader.get_template("500.html").render())
