"""Routes under ``/api/``: search, products, tokens, the OpenAPI schema and its docs pages."""

from django.http import JsonResponse
from django.urls import Resolver404, path, re_path, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from search.api import ImageSearchView, SearchView
from shop.api.auth import TokenRotateView, TokenView
from shop.api.errors import error_body
from shop.api.views import ProductViewSet

router = SimpleRouter()
router.register("products", ProductViewSet, basename="product")


@csrf_exempt
def api_not_found(request, unknown: str = ""):
    """JSON 404 for any other path under /api/ (with a hint when only the trailing slash is missing)."""
    message = f"No API endpoint at {request.path}; see /api/docs/."
    if not request.path.endswith("/"):
        try:
            resolve(request.path + "/")
            message = f"No API endpoint at {request.path}; did you mean {request.path}/ ?"
        except Resolver404:
            pass
    return JsonResponse(error_body("not_found", message), status=404)


urlpatterns = [
    path("search", SearchView.as_view(), name="api-search"),
    path("search/image", ImageSearchView.as_view(), name="api-search-image"),
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("auth/token/rotate/", TokenRotateView.as_view(), name="api-token-rotate"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    *router.urls,
    re_path(r"^(?P<unknown>.*)$", api_not_found),
]
