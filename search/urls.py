"""Event endpoints (mounted at ``/events/``) and the staff analytics page."""

from django.urls import path

from search import views_analytics, views_events

app_name = "search_events"

urlpatterns = [
    path("events/click", views_events.ClickBeaconView.as_view(), name="click"),
    # Any two segments reach the view (a mangled link gets its JSON 404, not the storefront's page).
    path("events/click/<path:token>/<str:product_id>/", views_events.ClickRedirectView.as_view(), name="click_redirect"),
    path("staff/analytics/", views_analytics.analytics, name="analytics"),
]
