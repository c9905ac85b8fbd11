"""Settings, read from the environment (12-factor) with local defaults that need no server.

Every integration is switched on by its variable: ``DATABASE_URL`` (PostgreSQL; SQLite by
default), ``CELERY_BROKER_URL`` (Redis workers; tasks run in-process without it),
``ELASTICSEARCH_URL`` (the Elasticsearch backend; the embedded engine without it).
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- core ---------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=True)
# The default key only exists so a fresh checkout runs; with DEBUG off a real one is required.
SECRET_KEY = env("SECRET_KEY", default="insecure-local-development-key" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "shop",
    "search",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the web process read while a worker writes; the timeout rides out short locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    # File-based so that every process (web, worker, command) sees the same entries, e.g. the
    # vector of a photo query while a shopper pages through its results.
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache"),
        "TIMEOUT": 3600,
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024

LOGIN_URL = "admin:login"

# --- security when DEBUG is off --------------------------------------------------------------
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- catalog and photos ---------------------------------------------------------------------
CATALOG_DIR = Path(env("CATALOG_DIR", default=str(BASE_DIR.parent / "shared" / "data")))
#: Upload and catalog photo limits (bytes, pixels); see mlmodels.images for how they were chosen.
MAX_IMAGE_BYTES = env.int("MAX_IMAGE_BYTES", default=10 * 1024 * 1024)
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", default=40_000_000)

# --- search -------------------------------------------------------------------------------------
SEARCH_INDEX_DIR = Path(env("SEARCH_INDEX_DIR", default=str(VAR_DIR / "search-index")))
ELASTICSEARCH_URL = env("ELASTICSEARCH_URL", default="")
SEARCH_BACKENDS = {
    "default": {
        "BACKEND": "search.backends.elasticsearch" if ELASTICSEARCH_URL else "search.backends.embedded",
        "INDEX_DIR": SEARCH_INDEX_DIR,
        "URLS": [ELASTICSEARCH_URL] if ELASTICSEARCH_URL else [],
        "INDEX": env("SEARCH_INDEX_NAME", default="products"),
    },
}
#: How results from BM25 and each kNN are combined: "rrf" or "linear" (min-max).
#: Linear, chosen by ``manage.py evaluate --sweep`` on the dev halves of CrowdFlower and Grocery:
#: on Grocery's test half it lifts photo-query nDCG@10 from 0.516 (RRF k=60) to 0.583; on
#: CrowdFlower's test half the two are level (0.801 vs 0.803, within noise), and over all 261
#: queries linear is 0.817 against 0.816 for RRF and 0.782 for BM25 alone.
SEARCH_FUSION = env("SEARCH_FUSION", default="linear")
#: RRF constant k (Cormack et al. 2009 use 60); used when SEARCH_FUSION is "rrf".
SEARCH_RRF_K = env.int("SEARCH_RRF_K", default=60)
#: Weight of each retriever in the blend. Keys: bm25, text_knn, fused_knn, image_knn. Only
#: ratios within one kind of query matter. Text: equal weights (the dev sweep's choice on
#: CrowdFlower). Photo: image 4 : fused 1 (the dev sweep's choice on Grocery); a photo's own
#: features are the strongest signal for "find this product".
SEARCH_WEIGHTS = {
    "bm25": env.float("SEARCH_WEIGHT_BM25", default=1.0),
    "text_knn": env.float("SEARCH_WEIGHT_TEXT_KNN", default=1.0),
    "fused_knn": env.float("SEARCH_WEIGHT_FUSED_KNN", default=1.0),
    "image_knn": env.float("SEARCH_WEIGHT_IMAGE_KNN", default=4.0),
}
#: BM25 field boosts (title matters most; a brand name is a strong signal). Title 3 : description
#: 1 was best on CrowdFlower's dev half among 1, 1.5, 2, 3, 4 and 6 (BM25 alone and with RRF).
SEARCH_FIELD_BOOSTS = {"title": 3.0, "brand": 2.0, "category": 1.5, "description": 1.0}
#: How many hits each retriever contributes before fusion.
SEARCH_CANDIDATES = env.int("SEARCH_CANDIDATES", default=200)
#: Fused product vector = normalise(text * w_text + image * w_image) in the fusion space.
FUSION_WEIGHTS = {"text": env.float("FUSION_WEIGHT_TEXT", default=0.5), "image": env.float("FUSION_WEIGHT_IMAGE", default=0.5)}
SEARCH_PAGE_SIZE = 24
#: Price bands for the facet, in the catalog currency (INR).
SEARCH_PRICE_BANDS = [0, 500, 1000, 2000, 5000, 10000, None]

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default="")
# No broker: tasks run in-process, at commit, so a fresh checkout needs no server.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-index": {"task": "workers.tasks.sweep_stale_products", "schedule": 300.0},
}
#: A product still pending after this many seconds is re-enqueued by the sweeper.
INDEX_STALE_AFTER_S = env.int("INDEX_STALE_AFTER_S", default=600)

# --- models -----------------------------------------------------------------------------------------
ENCODER_DEVICE = env("ENCODER_DEVICE", default="auto")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
