"""Settings for the test suite: a throwaway data directory per run, tasks in-process."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def _remove_if_owner(path: Path, owner: int) -> None:
    """Remove the run's data directory when the process that made it exits (not a forked child)."""
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


if os.environ.get("TEST_VAR_DIR"):
    _tmp = Path(os.environ["TEST_VAR_DIR"])
else:
    _tmp = Path(tempfile.mkdtemp(prefix="shop-test-"))
    atexit.register(_remove_if_owner, _tmp, os.getpid())
os.environ.setdefault("VAR_DIR", str(_tmp))
os.environ.setdefault("CELERY_BROKER_URL", "")
# The suite's catalogs are indexed with MiniLM's field only (here and in the servers and workers
# tests start, which inherit the environment): e5's first load exports its graph (about 100 s of
# CPU) into the run's empty cache. tests/test_e5_encoder.py turns it on where it tests it.
os.environ.setdefault("ADDITIONAL_TEXT_ENCODERS", "")

from config.settings.base import *  # noqa: E402,F403
from config.settings.base import _EMBEDDED, SEARCH_BACKENDS  # noqa: E402

VAR_DIR = _tmp
MEDIA_ROOT = _tmp / "media"
SEARCH_INDEX_DIR = _tmp / "search-index"
# The suite's default engine is always the embedded one on a throwaway directory; tests of the
# Elasticsearch backend build their own (tests/backends/).
for _alias in ("default", "embedded"):
    SEARCH_BACKENDS[_alias] = {**_EMBEDDED, "INDEX_DIR": SEARCH_INDEX_DIR, "INDEX": "products"}
FUSION_HEAD_DIR = _tmp / "fusion"
ENCODER_CACHE_DIR = _tmp / "models"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(_tmp / "cache")},
    # In-process tests share one memory store (tests without database access touch it too); the
    # database-backed store of the default settings has its own tests (tests/test_state_cache.py)
    # and serves the real servers of tests/attacks/.
    "state": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "state", "OPTIONS": {"MAX_ENTRIES": 1_000_000}},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not pytest-django's in-memory default: the Celery worker in tests/test_tasks.py
    # (another process) and searching threads must see the same committed rows.
    DATABASES["default"]["TEST"] = {"NAME": str(_tmp / "test-db.sqlite3")}  # noqa: F405
