"""The Celery app. Configured from Django settings with the ``CELERY_`` prefix.

Without ``CELERY_BROKER_URL`` tasks run in-process (``task_always_eager``), so a fresh checkout
needs no Redis; with it, ``celery -A workers worker -B`` runs them in real workers.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
