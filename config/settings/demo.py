"""Settings for the local demo: ``make demo`` and ``make serve`` (``DJANGO_SETTINGS_MODULE=config.settings.demo``).

The demo answers anyone who can reach it the way production would: DEBUG is off, so a 404, a
500 or a refused request shows the shop's own page, never a traceback, settings or local paths.
Unlike production it needs no domain, no TLS and no setup: it serves its own static files
(WhiteNoise, straight from the apps' folders) and the product photos in ``MEDIA_ROOT``, cookies
work over plain HTTP, and the ``SECRET_KEY`` is made once and kept in ``VAR_DIR`` unless the
environment gives one. It listens on 127.0.0.1 (the Makefile's ``HOST``); to open it to a
network, run ``make serve HOST=0.0.0.0`` with ``ALLOWED_HOSTS`` naming the address people use.
"""

from __future__ import annotations

import os
import secrets

from config.settings.base import *  # noqa: F403
from config.settings.base import MIDDLEWARE, VAR_DIR

DEBUG = False
_KEY_FILE = VAR_DIR / "demo-secret-key"
if os.environ.get("SECRET_KEY"):
    SECRET_KEY = os.environ["SECRET_KEY"]
else:
    if not _KEY_FILE.is_file():
        _KEY_FILE.touch(mode=0o600)
        _KEY_FILE.write_text(secrets.token_urlsafe(50))
    SECRET_KEY = _KEY_FILE.read_text().strip()

# Plain HTTP on a local address: no redirect to HTTPS, no HTTPS-only cookies, no HSTS.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
SECURE_PROXY_SSL_HEADER = None

# Static files by WhiteNoise from the apps' static folders (no collectstatic), photos by Django.
MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]
WHITENOISE_USE_FINDERS = True
#: config.urls serves MEDIA_ROOT at MEDIA_URL when this is on (Django's static view; fine for a demo).
SERVE_MEDIA = True
