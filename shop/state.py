"""The ``state`` cache: rate-limit counters and photo-search tokens, which no flood may evict.

Django's file cache (the ``default`` alias) deletes a third of its files once it holds
``MAX_ENTRIES`` (300): 400 page views filled it and evicted live rate-limit counters and photo
tokens, switching the photo-search limit off and expiring photo searches early. These entries
therefore live in the ``state`` alias (see ``CACHES``):

* Redis when configured (``CACHE_URL``, ``REDIS_URL`` or a ``redis://`` broker): Django's
  ``RedisCache``; entries leave only when their timeout passes (with ``maxmemory-policy``
  ``noeviction``, Redis's default).
* otherwise the database: :class:`StateCache`, Django's database cache without the culling of
  live rows. Past ``MAX_ENTRIES`` it deletes expired rows only, so the table holds the live
  entries (bounded by the rate limits' windows and the photo tokens' hour) plus at most
  ``MAX_ENTRIES`` expired ones; :func:`state_purge_expired` also runs hourly under Celery beat.

When the store cannot be reached (Redis down), callers treat it as :data:`STATE_ERRORS`: rate
limits let the request through and log an error, photo searches answer "temporarily unavailable".
"""

from __future__ import annotations

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.db import DatabaseCache
from django.db import DatabaseError, connections, router
from django.utils import timezone
from redis.exceptions import RedisError

#: Alias of the cache in ``CACHES``.
STATE_CACHE = "state"
#: What a store that cannot be reached raises (Redis down, database locked or gone).
STATE_ERRORS = (RedisError, DatabaseError, OSError)


def state_cache() -> BaseCache:
    """The ``state`` cache of this thread (Redis or the database, see the module docstring)."""
    return caches[STATE_CACHE]


class StateCache(DatabaseCache):
    """Django's database cache that never deletes a live entry to make room.

    ``LOCATION`` is the table (``shop_state_cache``, made by ``migrate``: ``shop.StateEntry``).
    ``MAX_ENTRIES`` is only the size past which a write first purges expired rows.
    """

    def _cull(self, db, cursor, now, num) -> None:
        connection = connections[db]
        cursor.execute(
            f"DELETE FROM {connection.ops.quote_name(self._table)} WHERE {connection.ops.quote_name('expires')} < %s",
            [connection.ops.adapt_datetimefield_value(now.replace(microsecond=0))],
        )

    def purge_expired(self) -> int:
        """Delete every expired row; returns how many were deleted."""
        db = router.db_for_write(self.cache_model_class)
        with connections[db].cursor() as cursor:
            self._cull(db, cursor, timezone.now(), 0)
            return max(cursor.rowcount, 0)


def state_purge_expired() -> int:
    """Delete expired entries of a database-kept ``state`` cache (Redis expires its own); returns the count."""
    store = state_cache()
    return store.purge_expired() if isinstance(store, StateCache) else 0
