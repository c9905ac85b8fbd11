"""Celery app and thin tasks. Importing the package makes the app the current one."""

from workers.celery import app as celery_app

__all__ = ["celery_app"]
