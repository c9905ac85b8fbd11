"""The ``state`` cache (shop.state): rate-limit counters and photo tokens survive what culls a cache.

The database-kept store runs on this run's real database table (``shop_state_cache``, made by
``migrate``); the Redis one on a real ``redis-server`` when installed. Which store the settings
choose is read from ``config.settings.base`` in a fresh interpreter for each environment.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache.backends.filebased import FileBasedCache
from django.test import RequestFactory
from django.utils import timezone

from mlmodels.image import ImageFeatures
from search.backends.base import SearchUnavailable
from search.clicks import guards
from shop.api.throttles import PhotoSearchAnonThrottle
from shop.models import StateEntry
from shop.query_photos import query_photo_load, query_photo_store
from shop.state import StateCache, state_purge_expired

REPO_ROOT = Path(__file__).resolve().parents[1]


def db_store(max_entries: int = 10) -> StateCache:
    return StateCache("shop_state_cache", {"OPTIONS": {"MAX_ENTRIES": max_entries}})


@pytest.mark.django_db
def test_the_database_store_keeps_every_live_entry_past_max_entries_where_the_file_cache_culls(tmp_path):
    # given: 50 live entries in stores that make room past 10
    store, files = db_store(max_entries=10), FileBasedCache(str(tmp_path / "files"), {"OPTIONS": {"MAX_ENTRIES": 10}})
    # when
    for i in range(50):
        store.set(f"key-{i}", i, timeout=600)
        files.set(f"key-{i}", i, timeout=600)
    # then: the database store answers all 50; the file cache (the old home of these entries) lost some
    assert [store.get(f"key-{i}") for i in range(50)] == list(range(50))
    assert sum(files.get(f"key-{i}") is not None for i in range(50)) < 50


@pytest.mark.django_db
def test_expired_entries_are_purged_past_max_entries_and_by_the_hourly_task(settings):
    # given: 12 entries that expired a minute ago and 3 live ones
    store = db_store(max_entries=10)
    for i in range(12):
        store.set(f"old-{i}", i, timeout=600)
    StateEntry.objects.update(expires=timezone.now() - timedelta(minutes=1))
    for i in range(3):
        store.set(f"live-{i}", i, timeout=600)  # a write past MAX_ENTRIES purges the expired rows first
    # then
    assert sorted(StateEntry.objects.values_list("cache_key", flat=True)) == [f":1:live-{i}" for i in range(3)]
    # and the beat task purges whatever expired since
    StateEntry.objects.filter(cache_key=":1:live-0").update(expires=timezone.now() - timedelta(seconds=1))
    settings.CACHES = {**settings.CACHES, "state": {"BACKEND": "shop.state.StateCache", "LOCATION": "shop_state_cache"}}
    assert state_purge_expired() == 1
    assert StateEntry.objects.count() == 2


def state_backend(**env: str) -> dict:
    """``CACHES["state"]`` as ``config.settings.base`` builds it from ``env`` (in a fresh interpreter)."""
    code = "import json; from config.settings import base; print(json.dumps(base.CACHES['state']))"
    clean = {k: v for k, v in os.environ.items() if k not in ("CACHE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**clean, "PYTHONPATH": str(REPO_ROOT), **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_store_is_redis_when_a_redis_url_or_broker_is_configured_else_the_database(tmp_path):
    assert state_backend(VAR_DIR=str(tmp_path))["BACKEND"] == "shop.state.StateCache"
    broker = state_backend(VAR_DIR=str(tmp_path), CELERY_BROKER_URL="redis://127.0.0.1:6390/0")
    assert (broker["BACKEND"], broker["LOCATION"]) == ("django.core.cache.backends.redis.RedisCache", "redis://127.0.0.1:6390/0")
    own = state_backend(VAR_DIR=str(tmp_path), CELERY_BROKER_URL="redis://127.0.0.1:6390/0", CACHE_URL="redis://127.0.0.1:6391/2")
    assert own["LOCATION"] == "redis://127.0.0.1:6391/2"


@pytest.fixture
def redis_down(settings):
    """The ``state`` cache on a Redis that is not running (a port nothing listens on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.CACHES = {**settings.CACHES, "state": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"socket_connect_timeout": 1}}}


def test_with_the_store_down_rate_limits_let_requests_through_and_say_so(redis_down, caplog):
    request = RequestFactory().post("/api/search/image", REMOTE_ADDR="203.0.113.9")
    request.user = AnonymousUser()
    with caplog.at_level(logging.ERROR):
        allowed = PhotoSearchAnonThrottle().allow_request(request, None)
        limited = guards.rate_limited("click-ip", "203.0.113.9", limit=1, window_s=60, now=timezone.now())
    assert allowed is True and limited is False
    assert "Rate limit search_photo_anon not checked" in caplog.text and "Rate limit click-ip not checked" in caplog.text


def test_with_the_store_down_a_photo_search_is_unavailable_not_an_error(redis_down):
    features = ImageFeatures(np.zeros((1, 1280), np.float32), np.zeros((1, 1000), np.float32))
    with pytest.raises(SearchUnavailable, match="temporarily unavailable"):
        query_photo_store(features)
    with pytest.raises(SearchUnavailable):
        query_photo_load("A" * 22)
