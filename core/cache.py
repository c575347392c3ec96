"""Django's Redis cache, failing soft: with Redis down, reads miss and writes are dropped (logged).

The cache only ever holds what can be recomputed (counts, throttle windows, tenant lookups), so an
outage of Redis must not turn requests into 500s: tracking keeps recording, the API keeps answering.
"""

import logging

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def _soft(method, default=None):
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except RedisError as exc:
            logger.warning("cache unavailable (%s): %s", method.__name__, exc.__class__.__name__)
            return default() if callable(default) else default

    wrapper.__name__ = method.__name__
    return wrapper


class FailSoftRedisCache(RedisCache):
    get_many = _soft(RedisCache.get_many, dict)
    has_key = _soft(RedisCache.has_key, False)
    set = _soft(RedisCache.set)
    set_many = _soft(RedisCache.set_many, list)
    add = _soft(RedisCache.add, False)
    touch = _soft(RedisCache.touch, False)
    delete = _soft(RedisCache.delete, False)
    delete_many = _soft(RedisCache.delete_many)
    clear = _soft(RedisCache.clear)

    def get(self, key, default=None, version=None):  # the caller's default comes back on failure
        try:
            return super().get(key, default, version)
        except RedisError as exc:
            logger.warning("cache unavailable (get): %s", exc.__class__.__name__)
            return default
