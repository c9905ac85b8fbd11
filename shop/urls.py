"""Storefront URLs (the admin is mounted in ``config.urls``)."""

from django.urls import path

from shop import views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("search/photo/", views.search_photo, name="search_photo"),
    path("search/photo/<str:token>.jpg", views.query_photo, name="query_photo"),
    path("p/<int:product_id>/", views.product_detail, name="product"),
]
