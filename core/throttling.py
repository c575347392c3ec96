"""Failed logins, counted the same way for the API's token endpoint and the admin login: per client
address and username, in a sliding window kept in the cache (whose keys carry the tenant's schema, so
tenants never share counters)."""

import hashlib
import time

from django.core.cache import cache


class FailureWindow:
    """At most `limit` failures per (address, username) within `seconds`; then wait."""

    def __init__(self, *, scope, limit, seconds, clock=time.time):
        self.scope, self.limit, self.seconds, self.clock = scope, limit, seconds, clock

    def _key(self, address, username):
        # Hashed: usernames are user input and cache keys must stay short and plain.
        who = f"{address}\0{str(username).strip().lower()[:150]}"
        return f"{self.scope}:{hashlib.sha256(who.encode()).hexdigest()[:32]}"

    def _recent(self, key, now):
        return [t for t in (cache.get(key) or []) if t > now - self.seconds]

    def retry_after(self, address, username):
        """Seconds until this client may try again for this username; 0 when it may now."""
        now = self.clock()
        recent = self._recent(self._key(address, username), now)
        if len(recent) < self.limit:
            return 0
        return max(1, int(self.seconds - (now - min(recent))) + 1)

    def record(self, address, username):
        key, now = self._key(address, username), self.clock()
        cache.set(key, self._recent(key, now) + [now], self.seconds)
