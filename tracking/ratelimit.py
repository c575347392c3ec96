"""Budgets for the links in our emails, kept in each web worker's memory.

A valid token can only come from an email, and a person opens or clicks a handful of times, so the
open pixel and the click redirect are limited per token (tenant, recipient, link), never per address:
Apple's and Gmail's image proxies and whole offices share one. A hit over its token's budget still
gets the normal answer (the GIF, the 302), so a person never sees an error and a replaying machine
learns nothing; only the hit is not stored, and it is counted (`unstored_hit`). The first `burst`
hits of a token are always stored, so unique opens and clicks are never affected.

The pages (unsubscribe, preferences) are limited per token as well; only requests whose token is
not valid are limited per client address (nobody can share an address with a mailbox provider there).

Why not Redis: one more network round trip per hit would cost the pixel a good part of
its throughput. The price is that every budget is per worker process: with N workers a token can
get up to N times the burst stored, which still bounds a replay to a constant.

Why not pyrate-limiter: its in-memory buckets keep a list of timestamps per key and a leaker thread;
a budget here is one float per key (GCRA: the time the key's bucket is full again).
"""

import logging
import threading
import time
from collections import Counter, OrderedDict

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from .models import HitKind

logger = logging.getLogger(__name__)

UNSTORED_REPORT_SECONDS = 60
UNSTORED_CACHE_KEY = "tracking:hits_not_stored:{campaign_id}"


class Budget:
    """Per-key rate limits: `burst` requests at once, then one per `interval` seconds.

    Thread-safe, memory bounded: keys whose bucket has refilled are dropped as they come to the
    front of the least-recently-used order, and beyond `max_keys` the least recently used key goes
    (it then starts with a full bucket again, which bounds memory rather than the budget).
    """

    def __init__(self, *, max_keys, clock=time.monotonic):
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        # key -> [time the bucket is full again, a value the caller remembers for the key]
        self._keys = OrderedDict()

    def take(self, key, *, burst, interval):
        """True when the key has budget left (and uses one unit of it), False when it is over."""
        with self._lock:
            now = self.clock()
            state = self._keys.get(key)
            full_at = max(state[0], now) if state else now
            if full_at + interval - now > burst * interval:
                if state:
                    self._keys.move_to_end(key)
                return False
            if state:
                state[0] = full_at + interval
                self._keys.move_to_end(key)
            else:
                self._keys[key] = [full_at + interval, None]
            self._evict(now)
            return True

    def remember(self, key, value):
        with self._lock:
            state = self._keys.get(key)
            if state:
                state[1] = value

    def recall(self, key):
        with self._lock:
            state = self._keys.get(key)
            return state[1] if state else None

    def clear(self):
        with self._lock:
            self._keys.clear()

    def __len__(self):
        return len(self._keys)

    def _evict(self, now):
        # A few idle keys per call keep the work per request constant.
        for _ in range(2):
            oldest = next(iter(self._keys.values()))
            if oldest[0] > now:
                break
            self._keys.popitem(last=False)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)


hits = Budget(max_keys=50_000)
pages = Budget(max_keys=20_000)


def _hit_key(kind, recipient_id, link_id):
    return (connection.schema_name, kind, recipient_id, link_id)


def hit_allowed(*, kind, recipient_id, link_id=None):
    """Whether an open or click (`kind`: a HitKind) of this token is stored."""
    return hits.take(
        _hit_key(kind, recipient_id, link_id),
        burst=settings.TRACKING_HIT_BURST,
        interval=settings.TRACKING_HIT_INTERVAL_SECONDS,
    )


# A click over budget is still redirected: its URL is kept next to the token's budget, so the replay
# costs no database round trip at all (the URL goes when the budget's key goes).
def click_url_remember(*, recipient_id, link_id, url):
    hits.remember(_hit_key(HitKind.CLICK, recipient_id, link_id), url)


def click_url_recall(*, recipient_id, link_id):
    return hits.recall(_hit_key(HitKind.CLICK, recipient_id, link_id))


def page_allowed(*, kind, object_id):
    """Whether a request of an unsubscribe or preferences token (`kind`: a TokenKind) is served."""
    return pages.take(
        (connection.schema_name, kind, object_id),
        burst=settings.TRACKING_PAGE_BURST,
        interval=settings.TRACKING_PAGE_INTERVAL_SECONDS,
    )


def invalid_link_allowed(*, client):
    """Whether a request with a token that is not valid gets its answer, per client
    (`core.clients.client_key`: the address, never a forwarded header we were not told to trust)."""
    return pages.take(
        (connection.schema_name, "invalid", client),
        burst=settings.TRACKING_PAGE_BURST,
        interval=settings.TRACKING_PAGE_INTERVAL_SECONDS,
    )


# --- hits not stored ------------------------------------------------------------------------------
class _Unstored:
    """Hits over budget, per tenant, reported at most once a minute per tenant and worker: a log line
    and the campaigns' counters in the cache (one query and one increment per campaign then)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._pending = {}  # schema -> Counter(recipient id -> hits)
        self._reported_at = {}  # schema -> clock

    def add(self, *, schema, recipient_id):
        with self._lock:
            self._pending.setdefault(schema, Counter())[recipient_id] += 1

    def take_due(self, *, schema, force=False):
        """The pending counts of a tenant when a report is due (None otherwise), emptied."""
        with self._lock:
            if schema not in self._pending:
                return None
            now = self.clock()
            last = self._reported_at.get(schema)
            if not force and last is not None and now - last < UNSTORED_REPORT_SECONDS:
                return None
            self._reported_at[schema] = now
            return self._pending.pop(schema)

    def clear(self):
        with self._lock:
            self._pending.clear()
            self._reported_at.clear()


unstored = _Unstored()


def unstored_hit(*, recipient_id):
    unstored.add(schema=connection.schema_name, recipient_id=recipient_id)


def unstored_report(*, force=False):
    """Report the current tenant's hits not stored if a report is due: the first right away, then at
    most once a minute. Called on the tracking requests themselves, so no timer thread is needed; a
    worker that sees no more hits of the tenant keeps its last minute's counts until the next one."""
    schema = connection.schema_name
    pending = unstored.take_due(schema=schema, force=force)
    if not pending:
        return
    total = sum(pending.values())
    logger.warning(
        "tracking: %d hits of %d recipients over their budget were not stored in tenant %s (this worker)",
        total,
        len(pending),
        schema,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, campaign_id FROM campaign_recipients WHERE id = ANY(%s)", [list(pending)]
            )
            per_campaign = Counter()
            for recipient_id, campaign_id in cursor.fetchall():
                per_campaign[campaign_id] += pending[recipient_id]
        for campaign_id, count in per_campaign.items():
            key = UNSTORED_CACHE_KEY.format(campaign_id=campaign_id)
            cache.add(key, 0, timeout=None)
            cache.incr(key, count)
    except Exception:  # an operator's counter: never the reason a pixel or redirect fails
        logger.exception("tracking: hits not stored could not be counted")


def hits_not_stored(*, campaign_id):
    """Hits of the campaign answered but not stored (over budget), as far as reported."""
    return cache.get(UNSTORED_CACHE_KEY.format(campaign_id=campaign_id), 0)


def reset():
    """Full budgets and no pending counts in this process (tests start from here)."""
    hits.clear()
    pages.clear()
    unstored.clear()
