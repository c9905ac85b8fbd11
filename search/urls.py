"""Event endpoints (mounted at ``/events/``) and the staff analytics page."""

from django.urls import path

from search import views_analytics, views_events

app_name = "search_events"

urlpatterns = [
    path("events/click", views_events.click_beacon, name="click"),
    path("events/click/<str:token>/<int:product_id>/", views_events.click_redirect, name="click_redirect"),
    path("staff/analytics/", views_analytics.analytics, name="analytics"),
]
