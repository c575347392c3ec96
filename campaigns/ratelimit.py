"""A per-tenant send rate shared by every worker: slots reserved in Redis, waited for, never dropped.

GCRA-style: Redis keeps the time at which the tenant's next free slot starts. A worker reserves n
slots in one round trip and learns when its first slot begins; it then sends message i no earlier
than first + i / rate. Reservations are serialised by Redis, so K workers together never exceed the
rate, and a worker that dies only wastes the slots it reserved. With Redis unreachable nothing is
reserved: `reserve` raises `RateUnavailable` and the caller stops sending (sending unpaced across
workers would break the tenant's rate).
"""

import threading
import time

from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# KEYS[1]: next free slot (seconds, float, Redis clock). ARGV: n, rate.
# Returns the delay in seconds until the first reserved slot (0 when it starts now).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + n / rate
redis.call('SET', KEYS[1], tostring(after), 'EX', math.ceil(after - now) + 60)
return tostring(tat - now)
"""


class RateUnavailable(Exception):
    """Redis, which keeps the shared reservations, cannot be reached; no slot was reserved."""


class Pacer:
    """Sleeps before each message until its reserved slot."""

    def __init__(self, *, start, interval, sleep=time.sleep, clock=time.monotonic):
        self.start = start
        self.interval = interval
        self.sleep = sleep
        self.clock = clock

    def wait(self, index):
        delay = self.start + index * self.interval - self.clock()
        if delay > 0:
            self.sleep(delay)


class RateLimiter:
    """`reserve(n)` -> a Pacer for n messages at the tenant's rate, across all workers."""

    def __init__(self, *, rate_per_second, key="campaigns:send-rate"):
        self.rate = max(float(rate_per_second), 0.001)
        self.key = key

    def reserve(self, n):
        try:
            delay = self._reserve_redis(n)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise RateUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if delay is None:
            delay = _local_reserve(self.key, n, self.rate)
        return Pacer(start=time.monotonic() + delay, interval=1.0 / self.rate)

    def _reserve_redis(self, n):
        backend = getattr(cache, "_cache", None)
        get_client = getattr(backend, "get_client", None)
        if get_client is None:
            return None
        key = cache.make_key(self.key)  # carries the tenant's schema (django_tenants.cache.make_key)
        client = get_client(key, write=True)
        return max(0.0, float(client.eval(_RESERVE, 1, key, n, self.rate)))


_local_lock = threading.Lock()
_local_next = {}


def _local_reserve(key, n, rate):
    """Without Redis (tests, development) the same arithmetic within one process."""
    from django.db import connection

    full_key = (connection.schema_name, key)
    with _local_lock:
        now = time.monotonic()
        start = max(_local_next.get(full_key, now), now)
        _local_next[full_key] = start + n / rate
        return start - now
