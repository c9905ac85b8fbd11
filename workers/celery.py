"""The Celery app. Configured from Django settings with the ``CELERY_`` prefix.

Without ``CELERY_BROKER_URL`` tasks run in-process (``task_always_eager``), so a fresh checkout
needs no Redis; with it, ``celery -A workers worker -B`` runs them in real workers. Each worker
process starts the warm start as it comes up (``worker_process_init``): the encoders load in a
background thread, so the first indexing task pays no model load (``SEARCH_WARM_START``).
"""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])


@worker_process_init.connect
def warm_start(**_kwargs) -> None:
    """Load the encoders in the background as a worker process starts (prefork children and ``--pool=solo``)."""
    # App code, imported here: this module loads while Django is still loading its apps (INSTALLED_APPS
    # names "workers"), before the search app's models can be imported.
    from search.warmup import start_at_boot

    start_at_boot("celery worker")
