"""ASGI entry point. Like ``config/wsgi.py``, building the application starts the warm start
(``search.warmup``; ``SEARCH_WARM_START=false`` turns it off)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
application = get_asgi_application()

from search.warmup import start_at_boot  # noqa: E402  (app code: importable once the application set Django up)

start_at_boot("web")
