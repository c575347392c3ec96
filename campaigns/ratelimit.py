"""A per-tenant send rate shared by every worker: slots reserved in Redis, waited for, never dropped.

GCRA-style: Redis keeps the time at which the tenant's next free slot starts. A worker reserves n
slots in one round trip and learns when its first slot begins; it then sends message i no earlier
than first + i / rate. Reservations are serialised by Redis, so K workers together never exceed the
rate, and a worker that dies only wastes the slots it reserved. A sender reserves before it claims
(waiting for a slot never eats a lease) and gives back the slots a short batch did not use, as long
as nobody reserved after them. With Redis unreachable nothing is reserved: `reserve` raises
`RateUnavailable` and the caller stops sending (sending unpaced across workers would break the
tenant's rate).
"""

import threading
import time
from functools import partial

from django.core.cache import cache
from django.db import connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# KEYS[1]: next free slot (seconds, float, Redis clock). ARGV: n, rate.
# Returns {the delay in seconds until the first reserved slot (0 when it starts now), the value the
# key now holds (the end of this reservation, as stored: a give-back compares it exactly)}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tostring(tat + n / rate)
redis.call('SET', KEYS[1], after, 'EX', math.ceil(tonumber(after) - now) + 60)
return {tostring(tat - now), after}
"""

# KEYS[1] as above. ARGV: the end of a reservation (as _RESERVE returned it), unused slots, rate.
# The unused tail goes back only while that reservation is still the last one.
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local back = tonumber(ARGV[1]) - tonumber(ARGV[2]) / tonumber(ARGV[3])
redis.call('SET', KEYS[1], tostring(back), 'EX', math.max(math.ceil(back - now), 0) + 60)
return 1
"""


class RateUnavailable(Exception):
    """Redis, which keeps the shared reservations, cannot be reached; no slot was reserved."""


class Pacer:
    """Sleeps before each message until its reserved slot."""

    def __init__(self, *, start, interval, sleep=time.sleep, clock=time.monotonic, give_back=None):
        self.start = start
        self.interval = interval
        self.sleep = sleep
        self.clock = clock
        self._give_back = give_back

    def delay(self):
        """Seconds until the first reserved slot."""
        return max(0.0, self.start - self.clock())

    def wait(self, index):
        delay = self.start + index * self.interval - self.clock()
        if delay > 0:
            self.sleep(delay)

    def give_back(self, unused):
        """Return the last `unused` slots (a batch found fewer recipients than it reserved for), if
        nobody reserved after them; otherwise they are only lost time, as a dead worker's are."""
        if unused > 0 and self._give_back is not None:
            self._give_back(unused)


class RateLimiter:
    """`reserve(n)` -> a Pacer for n messages at the tenant's rate, across all workers."""

    def __init__(self, *, rate_per_second, key="campaigns:send-rate"):
        self.rate = max(float(rate_per_second), 0.001)
        self.key = key

    def reserve(self, n):
        try:
            reserved = self._reserve_redis(n)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise RateUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if reserved is None:
            delay, end = _local_reserve(self.key, n, self.rate)
            give_back = partial(_local_give_back, self.key, end, self.rate)
        else:
            delay, end = reserved
            give_back = partial(self._give_back_redis, end)
        return Pacer(start=time.monotonic() + delay, interval=1.0 / self.rate, give_back=give_back)

    def _client(self):
        """(Redis client, key), or (None, None) without a Redis cache."""
        backend = getattr(cache, "_cache", None)
        get_client = getattr(backend, "get_client", None)
        if get_client is None:
            return None, None
        key = cache.make_key(self.key)  # carries the tenant's schema (django_tenants.cache.make_key)
        return get_client(key, write=True), key

    def _reserve_redis(self, n):
        """(delay, end of the reservation) from Redis, or None without a Redis cache."""
        client, key = self._client()
        if client is None:
            return None
        delay, end = client.eval(_RESERVE, 1, key, n, self.rate)
        return max(0.0, float(delay)), end

    def _give_back_redis(self, end, unused):
        try:
            client, key = self._client()
            if client is not None:
                client.eval(_GIVE_BACK, 1, key, end, unused, self.rate)
        except (RedisConnectionError, RedisTimeoutError):
            pass  # the slots stay reserved: lost time, never a rate exceeded


_local_lock = threading.Lock()
_local_next = {}


def _local_key(key):
    return (connection.schema_name, key)


def _local_reserve(key, n, rate):
    """Without Redis (tests, development) the same arithmetic within one process: (delay, end)."""
    with _local_lock:
        now = time.monotonic()
        start = max(_local_next.get(_local_key(key), now), now)
        end = start + n / rate
        _local_next[_local_key(key)] = end
        return start - now, end


def _local_give_back(key, end, rate, unused):
    with _local_lock:
        if _local_next.get(_local_key(key)) == end:
            _local_next[_local_key(key)] = end - unused / rate
