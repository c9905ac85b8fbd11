"""Event endpoints (mounted at ``/events/``) and the staff analytics page."""

from django.urls import path

from search.clicks import analytics_views, views

app_name = "search_events"

urlpatterns = [
    path("events/click", views.ClickBeaconView.as_view(), name="click"),
    # Any two segments reach the view (a mangled link gets its JSON 404, not the storefront's page).
    path("events/click/<path:token>/<str:product_id>/", views.ClickRedirectView.as_view(), name="click_redirect"),
    path("staff/analytics/", analytics_views.analytics, name="analytics"),
]
