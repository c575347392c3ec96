"""Failed logins: one mechanism for the API's token endpoint and the admin login.

Three limits, counted in the same windows for both doors (LOGIN_* settings):

- per account and client (LOGIN_MAX_FAILURES): one client guessing one account's password;
- per client over all accounts (LOGIN_MAX_FAILURES_PER_CLIENT): one password sprayed over many
  usernames;
- per account over all clients (LOGIN_MAX_FAILURES_PER_ACCOUNT): many clients guessing one account.
  It is higher than the per-client limit, so one client alone never reaches it, and it does not apply
  to a client that has signed in to that account before (within LOGIN_KNOWN_CLIENT_DAYS): guessing from
  a botnet slows to a trickle while the real user, from where they usually sign in, never notices. A
  new device of theirs waits at most until the guessing has been quiet for a window.

The client is `core.clients.client_key` (the TCP peer unless TRUSTED_PROXIES says otherwise), so a forged
X-Forwarded-For buys nothing, and behind a trusted proxy each client has its own limits: an attacker
behind the same proxy cannot lock a user out.

An attempt is checked against all three limits and counted in one atomic step (a Lua script in Redis,
a lock elsewhere) before the password is checked, and refunded when the password was right: parallel
guesses cannot all read "under the limit" and slip through, and exactly `limit` of them get through.
A refused attempt checks no password and is not counted. Windows slide (the previous window's count
weighs by how much of it still overlaps the last `seconds`), and cache keys carry the tenant's schema
(django-tenants' key function), so tenants never share counters. With the cache unreachable the limits
are off (logged), as every cached thing is.
"""

import hashlib
import logging
import math
import threading
import time

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

clock = time.time  # tests move it
EPSILON = 1e-9  # the windows' weights are floats: a count exactly at the limit is within it

# KEYS: n current-window counters, n previous-window counters, the "known client" marker.
# ARGV: n, ttl, then per window its limit, the previous window's weight, and 1 when a known client is
# exempt from it. Returns the (1-based) windows that are full; counts in all of them only when none is.
_COUNT_SCRIPT = """
local n = tonumber(ARGV[1])
local known = redis.call('EXISTS', KEYS[2 * n + 1]) == 1
local full = {}
for i = 1, n do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  local previous = tonumber(redis.call('GET', KEYS[n + i]) or '0')
  local limit = tonumber(ARGV[2 + 3 * (i - 1) + 1])
  local weight = tonumber(ARGV[2 + 3 * (i - 1) + 2])
  local exempt = ARGV[2 + 3 * (i - 1) + 3] == '1' and known
  if not exempt and previous * weight + current + 1 > limit + 1e-9 then
    table.insert(full, i)
  end
end
if #full == 0 then
  for i = 1, n do
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[2]))
  end
end
return full
"""
_local_lock = threading.Lock()  # the same step for caches without scripts (development without Redis)


def _hashed(*parts):
    # Usernames are user input and cache keys must stay short and plain.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def normalized_username(username):
    return str(username or "").strip().lower()[:150]


class FailureWindow:
    """At most `limit` failures per key within a sliding window of `seconds`."""

    def __init__(self, *, scope, limit, seconds, known_exempt=False):
        self.scope, self.limit, self.seconds, self.known_exempt = scope, limit, seconds, known_exempt

    def keys(self, who, now):
        """(this window's key, the previous window's key, the previous window's weight now)."""
        index = math.floor(now / self.seconds)
        elapsed = (now - index * self.seconds) / self.seconds
        return self._key(who, index), self._key(who, index - 1), 1 - elapsed

    def _key(self, who, index):
        return f"login:{self.scope}:{_hashed(*who)}:{index}"

    def retry_after(self, who, now):
        """Seconds until one more attempt would be within the limit (0 when it is now)."""
        current_key, previous_key, weight = self.keys(who, now)
        current, previous = cache.get(current_key, 0), cache.get(previous_key, 0)
        elapsed = 1 - weight
        if previous * weight + current + 1 <= self.limit + EPSILON:
            return 0
        if current + 1 <= self.limit:  # within this window, once enough of the previous has slid out
            wait = (1 - (self.limit - current - 1) / previous - elapsed) * self.seconds
        else:  # in the next window, once enough of this one has slid out
            wait = (1 - elapsed) * self.seconds + (1 - (self.limit - 1) / current) * self.seconds
        return max(1, math.ceil(wait - 1e-6))  # 200.00000000000003 s is 200 s


def _windows():
    seconds = settings.LOGIN_FAILURE_WINDOW_SECONDS
    return {
        "account-client": FailureWindow(scope="pair", limit=settings.LOGIN_MAX_FAILURES, seconds=seconds),
        "client": FailureWindow(
            scope="client", limit=settings.LOGIN_MAX_FAILURES_PER_CLIENT, seconds=seconds
        ),
        "account": FailureWindow(
            scope="account", limit=settings.LOGIN_MAX_FAILURES_PER_ACCOUNT, seconds=seconds, known_exempt=True
        ),
    }


def _known_key(username, client):
    return f"login:known:{_hashed(username, client)}"


def _count_in_redis(checks, known_key, ttl):
    backend = caches["default"]
    keys = [backend.make_and_validate_key(key) for key in [c[1] for c in checks] + [c[2] for c in checks]]
    keys.append(backend.make_and_validate_key(known_key))
    args = [len(checks), ttl]
    for window, _, _, weight in checks:
        args += [window.limit, repr(weight), "1" if window.known_exempt else "0"]
    client = backend._cache.get_client(keys[0], write=True)  # the cache's own Redis connection
    return [checks[i - 1][0] for i in client.eval(_COUNT_SCRIPT, len(keys), *keys, *args)]


def _count_locally(checks, known_key, ttl):
    with _local_lock:
        known = cache.get(known_key) is not None
        full = [
            window
            for window, current_key, previous_key, weight in checks
            if not (window.known_exempt and known)
            and cache.get(previous_key, 0) * weight + cache.get(current_key, 0) + 1 > window.limit + EPSILON
        ]
        if not full:
            for _, current_key, _, _ in checks:
                cache.set(current_key, cache.get(current_key, 0) + 1, ttl)
        return full


class LoginAttempt:
    """One login attempt: `LoginAttempt.begin(...)` checks and counts it, `retry_after` says whether it
    may go on (0) or must be answered 429, and `succeeded()` refunds it after the password was right."""

    def __init__(self, *, username, client):
        self.username, self.client = normalized_username(username), client
        self.counted = []
        self.retry_after = 0

    @classmethod
    def begin(cls, *, username, client):
        attempt = cls(username=username, client=client)
        attempt._count()
        return attempt

    def _who(self, name):
        return {
            "account-client": (self.username, self.client),
            "client": (self.client,),
            "account": (self.username,),
        }[name]

    def _count(self):
        now, windows = clock(), _windows()
        checks = [(window, *window.keys(self._who(name), now)) for name, window in windows.items()]
        ttl = 2 * settings.LOGIN_FAILURE_WINDOW_SECONDS + 1
        known_key = _known_key(self.username, self.client)
        count = _count_in_redis if isinstance(caches["default"], RedisCache) else _count_locally
        try:
            full = count(checks, known_key, ttl)
        except Exception as error:  # a cache outage must not make logins fail
            logger.warning("login limits unavailable: %s", error.__class__.__name__)
            return
        if full:
            names = {window: name for name, window in windows.items()}
            self.retry_after = max(window.retry_after(self._who(names[window]), now) for window in full)
        else:
            self.counted = [current_key for _, current_key, _, _ in checks]

    def _refund(self):
        for key in self.counted:
            try:
                cache.decr(key)
            except Exception:  # expired or unreachable: nothing left to refund
                pass
        self.counted = []

    def abandon(self):
        """No password was checked after all (the request was refused for another reason)."""
        self._refund()

    def succeeded(self):
        """The password was right: the attempt is no failure, and this client is now known to the account."""
        self._refund()
        cache.set(_known_key(self.username, self.client), 1, settings.LOGIN_KNOWN_CLIENT_DAYS * 86400)
