"""URL configuration."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from search import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),  # liveness
    path("readyz", health.readyz, name="readyz"),  # readiness: encoders warm, index open
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
    path("", include("shop.urls")),
    path("", include("search.urls")),  # /events/ (click feedback) and /staff/analytics/
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
elif getattr(settings, "SERVE_MEDIA", False):  # the demo (config.settings.demo): DEBUG off, photos still shown
    urlpatterns += [re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})]

handler400 = "shop.views.bad_request"
handler403 = "shop.views.permission_denied"
handler404 = "shop.views.page_not_found"
handler500 = "shop.views.server_error"
