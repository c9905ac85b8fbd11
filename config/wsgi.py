"""WSGI entry point (``runserver``, gunicorn). Building the application starts the warm start:
the encoders and the index load in a background thread while the process already serves
(``search.warmup``; ``SEARCH_WARM_START=false`` turns it off)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
application = get_wsgi_application()

from search.warmup import start_at_boot  # noqa: E402  (app code: importable once the application set Django up)

start_at_boot("web")
