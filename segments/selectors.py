"""Reads of segments: who a segment matches, counted, previewed. One SQL query each, never a loop.

Campaigns build their audience from `segment_customers(...)`/`rules_queryset(...)` inside an
``INSERT ... SELECT`` (via ``.values("id")``), so these return plain, un-evaluated querysets.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from customers.models import Customer, OrderItem, Tag
from customers.selectors import customers_estimate

from .models import Segment, SegmentMember
from .rules import RuleError, compile_rules

logger = logging.getLogger(__name__)

PREVIEW_SAMPLE_SIZE = 10
# Up to this many rows read, walking the primary key for the newest matches beats sorting them all.
PREVIEW_WALK_ROWS = 20_000


def customers_matchable() -> QuerySet[Customer]:
    """Every customer a segment may match: erased customers never match anything."""
    return Customer.objects.filter(erased_at__isnull=True)


def rules_queryset(*, rules, now=None) -> QuerySet[Customer]:
    """Customers matching a react-querybuilder rule tree; raises `RuleError` for invalid rules."""
    return customers_matchable().filter(compile_rules(rules, now=now))


def segment_customers(*, segment: Segment, now=None) -> QuerySet[Customer]:
    """The customers a segment matches now: compiled rules (dynamic) or its member list (static)."""
    if segment.kind == "static":
        members = SegmentMember.objects.filter(segment_id=segment.pk, customer_id=OuterRef("pk"))
        return customers_matchable().filter(Exists(members))
    if segment.rules is None:
        raise RuleError(["rules: a dynamic segment needs rules"])
    return rules_queryset(rules=segment.rules, now=now)


def segment_list() -> QuerySet[Segment]:
    return Segment.objects.all()


def _count_cache_key(segment):
    # updated_at moves with every edit and every member change, so an edit never shows a stale count.
    stamp = segment.updated_at.timestamp() if segment.updated_at else 0
    return f"segments:count:{segment.pk}:{stamp}"


def segment_count(*, segment: Segment, refresh=False) -> dict:
    """``{"count", "counted_at"}`` for a segment, cached briefly per tenant (the cache key function
    carries the tenant's schema); `refresh` recomputes. A segment whose rules no longer compile
    (e.g. a field that is gone) counts as None rather than failing the page that shows it."""
    key = _count_cache_key(segment)
    if not refresh:
        try:
            cached = cache.get(key)
        except Exception:  # a cache outage costs a query, never a failed request
            logger.warning("segment count cache unavailable", exc_info=True)
            cached = None
        if cached is not None:
            return cached
    try:
        count = segment_customers(segment=segment).count()
    except RuleError:
        count = None
    result = {"count": count, "counted_at": timezone.now()}
    try:
        cache.set(key, result, settings.SEGMENT_COUNT_CACHE_SECONDS)
    except Exception:
        logger.warning("segment count cache unavailable", exc_info=True)
    return result


def segment_count_cached(*, segment: Segment) -> dict | None:
    """The cached count if there is one (lists show it without counting every row)."""
    try:
        return cache.get(_count_cache_key(segment))
    except Exception:
        logger.warning("segment count cache unavailable", exc_info=True)
        return None


def segment_preview(*, rules, sample_size=PREVIEW_SAMPLE_SIZE) -> dict:
    """``{"count", "sample", "milliseconds"}`` for rules being edited; raises `RuleError`.

    The count is the plain ``count(*)`` (the planner's best plan: parallel scans and hash joins, as a
    hand-tuned count). The newest matches come from a second query, shaped by how many matched:
    - a broad segment walks the primary key backwards and stops at the tenth match, reading about
      ``10 × customers / matches`` rows (a fraction of a millisecond at 3% of a million);
    - a narrow one would make that walk read most of the table row by row, so it sorts the matches
      instead (``ORDER BY id + 0`` keeps the planner off the index): one more scan like the count's.
    One query with ``count(*) OVER ()`` looked cheaper but the planner costs it as if the LIMIT stopped
    the scan early and picks the serial index walk for every row (twice the count's time at 1M).
    """
    started = time.monotonic()
    matching = rules_queryset(rules=rules)
    count = matching.count()
    newest = []
    if count:
        walk_rows = sample_size * customers_estimate() / count
        ordering = "-id" if walk_rows <= PREVIEW_WALK_ROWS else (F("id") + 0).desc()
        newest = list(matching.order_by(ordering).values_list("id", flat=True)[:sample_size])
    sample = list(customers_matchable().filter(id__in=newest).order_by("-id").prefetch_related("tags"))
    return {"count": count, "sample": sample, "milliseconds": round((time.monotonic() - started) * 1000)}


# --- the builder's value suggestions --------------------------------------------------------------
# (table, the lower(column) an expression index holds, the column shown) per field.
_SUGGEST_COLUMNS = {
    "city": (Customer, "city"),
    "country": (Customer, "country"),
    "purchased_sku": (OrderItem, "sku"),
}
# A skip scan over the lower(column) index: one index probe per distinct value, so twenty
# suggestions cost twenty probes whether a million customers live in Budapest or none.
_SKIP_SCAN_SQL = """
WITH RECURSIVE found(value) AS (
    (SELECT lower({column}) FROM {table}
      WHERE lower({column}) >= %(start)s AND lower({column}) <> '' ORDER BY 1 LIMIT 1)
    UNION ALL
    SELECT (SELECT lower({column}) FROM {table} WHERE lower({column}) > found.value ORDER BY 1 LIMIT 1)
      FROM found WHERE found.value LIKE %(prefix)s
)
SELECT (SELECT {column} FROM {table} WHERE lower({column}) = found.value LIMIT 1)
  FROM found WHERE found.value LIKE %(prefix)s LIMIT %(limit)s
"""


def value_suggestions(*, field, query, limit=20):
    """Values of `field` in the tenant's data beginning with `query` (case-insensitive), sorted."""
    query = (query or "").strip().lower()
    if field == "tags":
        return list(
            Tag.objects.filter(name__istartswith=query)
            .order_by("name")
            .values_list("name", flat=True)[:limit]
        )
    if field not in _SUGGEST_COLUMNS:
        return []
    model, column = _SUGGEST_COLUMNS[field]
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    sql = _SKIP_SCAN_SQL.format(table=connection.ops.quote_name(model._meta.db_table), column=column)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"start": query, "prefix": escaped + "%", "limit": limit})
        return [row[0] for row in cursor.fetchall() if row[0]]
