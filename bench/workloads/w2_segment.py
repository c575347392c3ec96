"""Row 2: count a 4-condition segment (number, text `in`, date `inLastDays`, tag) through the segments
API (`POST /api/segments/preview`: count and a sample of 10) against the hand-tuned SQL count."""

import json

from django.db import connection
from django_tenants.utils import schema_context

from bench.core import Check, GrowthPoint, Row, alternate, median, timed
from segments.selectors import rules_queryset

TARGET = "≤ 1.5× baseline time and < 300 ms"
RULES = {
    "combinator": "and",
    "rules": [
        {"field": "total_spent", "operator": ">", "value": "20000"},
        {"field": "city", "operator": "in", "value": ["Budapest", "Debrecen", "Szeged"]},
        {"field": "last_order_at", "operator": "inLastDays", "value": 180},
        {"field": "tags", "operator": "contains", "value": "newsletter"},
    ],
}
# The count as a PostgreSQL expert writes it (plan in bench/README.md): the tag's id looked up first,
# so the planner knows from customertag's statistics that 40% of customers hold it and joins by hash
# instead of probing the customer pkey once per tag holder; the other three conditions filter one
# parallel scan of the customers.
TAG_ID = "SELECT id FROM customers_tag WHERE lower(name) = 'newsletter'"
HAND_TUNED = """
SELECT count(*) FROM customers_customer c
WHERE c.erased_at IS NULL
  AND c.total_spent > 20000
  AND lower(c.city) IN ('budapest', 'debrecen', 'szeged')
  AND c.last_order_at >= now() - interval '180 days'
  AND EXISTS (SELECT 1 FROM customers_customertag ct WHERE ct.customer_id = c.id AND ct.tag_id = %s)
"""


def _count_alone(ctx, *, runs):
    """The compiled rules' plain count query, timed alone (the API adds the sample and the HTTP stack)."""
    with schema_context(ctx.data_schema):
        return median([timed(rules_queryset(rules=RULES).count)[0] for _ in range(runs)]) * 1000


def run(ctx, *, size, main):
    client = ctx.api()
    counts = {}

    def ours():
        response = client.post(
            "/api/segments/preview", json.dumps({"rules": RULES}), content_type="application/json"
        )
        if response.status_code != 200:
            raise RuntimeError(f"preview answered {response.status_code}: {response.content[:500]!r}")
        counts["api"] = response.json()["count"]

    def baseline():
        with schema_context(ctx.data_schema), connection.cursor() as cursor:
            cursor.execute(TAG_ID)
            tag_id = cursor.fetchone()[0]
            cursor.execute(HAND_TUNED, [tag_id])
            counts["sql"] = cursor.fetchone()[0]

    ours_times, base_times = alternate(ours, baseline, runs=ctx.scale.query_runs)
    ours_ms, base_ms = median(ours_times) * 1000, median(base_times) * 1000
    count_ms = _count_alone(ctx, runs=max(3, ctx.scale.query_runs // 2))
    point = GrowthPoint("2 segment count", size, ours_ms / 1000, base_ms / 1000)
    ctx.log(f"row 2 @ {size:,}: API {ours_ms:.1f} ms, SQL {base_ms:.1f} ms (count {counts['sql']:,})")
    if not main:
        return point, None
    return point, Row(
        key="2",
        workload=f"count a 4-condition segment over {size:,} customers",
        unit="ms",
        ours=ours_ms,
        baseline=base_ms,
        target=TARGET,
        rule=lambda ours, base, ratio: ratio <= 1.5 and ours < 300,
        note=f"medians of {ctx.scale.query_runs}; {counts['sql']:,} customers match; the API returns the "
        f"count, then the newest 10 by walking the primary key (segments.selectors.segment_preview); the compiled count query alone takes {count_ms:.1f} ms",
        checks=[Check("API count = SQL count", counts["api"], counts["sql"])],
    )
