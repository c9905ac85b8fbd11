"""Production settings: ``DJANGO_SETTINGS_MODULE=config.settings.production``.

DEBUG is off whatever the environment says, ``SECRET_KEY`` and ``ALLOWED_HOSTS`` must come from
the environment, cookies are HTTPS-only, HSTS is on, and static files are served by WhiteNoise
(run ``manage.py collectstatic`` at deploy). ``manage.py check --deploy`` passes with no
warnings (a test asserts it). Media (product photos) are served by the web server or a CDN.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, MIDDLEWARE, env

DEBUG = False

# Read raw: django-environ would treat a key starting with "$" as a reference to another variable.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith(("insecure", "django-insecure")):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set in the environment to a random string of at least 50 characters, e.g. "
        "python -c 'from django.core.management.utils import get_random_secret_key as k; print(k())'"
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the site's host names, e.g. ALLOWED_HOSTS=shop.example.com")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[f"https://{h}" for h in ALLOWED_HOSTS if not h.startswith(".")])

# --- HTTPS only --------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (nginx, a load balancer).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- static files by WhiteNoise, compressed, with hashed names ---------------------------------------
MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- database connections kept between requests -----------------------------------------------------
# A new connection per request cost a connect plus the SQLite PRAGMAs (WAL, synchronous) on every
# search: ~3 % of a web worker's samples under load (bench/load.py, bench/RESULTS.md). Checked
# before reuse (CONN_HEALTH_CHECKS), so a database restart costs one failed check, not a 500.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
