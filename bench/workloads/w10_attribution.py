"""Row 10: order ingest (`POST /api/orders/bulk`) with revenue attribution on, against the same with
attribution off, in a tenant with one hit-bearing campaign per customer and HITS_PER_CUSTOMER tracking
hits each (1M customers and 10M hits at full size); then the campaign's stats with revenue (10b)
against the hand-written aggregate over the same tables.

Off means no touch source is registered (customers.attribution.TOUCH_SOURCES empty): the order path
is then exactly what it was before attribution existed. Both run in this process through the full
Django stack, alternately, on fresh orders of random existing customers.
"""

import itertools
import time
import uuid

from django.db import connection, transaction
from django_tenants.utils import schema_context

from bench import data
from bench.core import HIGHER_IS_BETTER, Check, Row, alternate, median
from bench.workloads import w8_stats
from customers import attribution
from events.models import TransactionalEmail

TARGET_INGEST = "≥ 90% of its orders/s"
TARGET_STATS = "< 200 ms"
HITS_PER_CUSTOMER = 10
BULK = 500  # orders per POST /api/orders/bulk
DAYS = 30

# Hits of the row-8 campaign's recipients spread over the last 30 days: 30% clicks, 70% opens of
# which a fifth by machines (a hash of the recipient and n decides, so every run has the same hits).
HITS_INSERT = """
INSERT INTO tracking_hits (kind, campaign_id, recipient_id, customer_id, link_id, is_machine, ip,
                           user_agent, occurred_at, processed_at)
SELECT CASE WHEN h < 0.3 THEN 'c' ELSE 'o' END, r.campaign_id, r.id, r.customer_id, NULL,
       h >= 0.3 AND h < 0.44, NULL, 'bench', now() - (h2 * %(days)s) * interval '1 day', now()
FROM (SELECT r.id, r.campaign_id, r.customer_id, n,
             (hashtext(r.id || ':' || n) & 2147483647)::float8 / 2147483647 AS h,
             (hashtext(n || ':' || r.id) & 2147483647)::float8 / 2147483647 AS h2
      FROM campaign_recipients r CROSS JOIN generate_series(1, %(per)s) n
      WHERE r.campaign_id = %(campaign)s AND r.id BETWEEN %(first)s AND %(last)s) r
"""
REVENUE_SQL = """
SELECT count(*), coalesce(sum(total), 0), count(DISTINCT customer_id)
FROM customers_order_attribution WHERE campaign_id = %(campaign)s AND counts
"""


def _hits(schema, campaign):
    """HITS_PER_CUSTOMER hits for every recipient of the campaign (once; kept between runs)."""
    with schema_context(schema), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracking_hits WHERE campaign_id = %s", [campaign.pk])
        if cursor.fetchone()[0]:
            cursor.execute("SELECT count(*) FROM tracking_hits")
            return cursor.fetchone()[0], 0.0
        started = time.perf_counter()
        # Generating 10M rows is set-up, not a web request: no statement timeout for it.
        cursor.execute("SET LOCAL statement_timeout = 0")
        cursor.execute(
            "SELECT min(id), max(id) FROM campaign_recipients WHERE campaign_id = %s", [campaign.pk]
        )
        low, high = cursor.fetchone()
        for first in range(low, high + 1, 100_000):
            cursor.execute(
                HITS_INSERT,
                {
                    "campaign": campaign.pk,
                    "per": HITS_PER_CUSTOMER,
                    "days": DAYS,
                    "first": first,
                    "last": first + 99_999,
                },
            )
        cursor.execute("SELECT count(*) FROM tracking_hits")
        total = cursor.fetchone()[0]
    data.vacuum(schema, "tracking_hits")
    return total, time.perf_counter() - started


def _customer_ids(schema, n):
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_id FROM campaign_recipients WHERE campaign_id = "
            "(SELECT id FROM campaigns WHERE name = 'bench: stats') ORDER BY hashtext('o' || id) LIMIT %s",
            [n],
        )
        return [row[0] for row in cursor.fetchall()]


def run(ctx, *, size):
    schema = ctx.data_schema
    campaign = w8_stats._campaign(schema)
    hits, seconds = _hits(schema, campaign)
    if seconds:
        ctx.log(f"row 10: {hits:,} tracking hits made in {seconds:.1f} s")
    client = ctx.api()
    # Medians of 9 bulks each: a bulk is a few seconds and the machine is shared; 5 moved the ratio by 0.04.
    runs = max(3, (ctx.scale.query_runs * 9) // 20)
    customers = itertools.cycle(_customer_ids(schema, BULK * (runs + 1) * 2))
    tag = uuid.uuid4().hex[:6]
    counter = itertools.count()
    sources = dict(attribution.TOUCH_SOURCES)
    seen = {"created": 0, "failed": 0}

    def ingest():
        batch = [
            {
                "external_id": f"bench-{tag}-{next(counter)}",
                "customer": next(customers),
                "total": "49.90",
                "status": "paid",
            }
            for _ in range(BULK)
        ]
        response = client.post("/api/orders/bulk", batch, content_type="application/json")
        if response.status_code != 200:
            raise RuntimeError(f"orders/bulk answered {response.status_code}: {response.content[:300]!r}")
        body = response.json()
        seen["created"] += body["created"]
        seen["failed"] += body["failed"]

    def ours():
        attribution.TOUCH_SOURCES.update(sources)
        ingest()

    def baseline():
        attribution.TOUCH_SOURCES.clear()
        try:
            ingest()
        finally:
            attribution.TOUCH_SOURCES.update(sources)

    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_order_attribution")
        attributed_before = cursor.fetchone()[0]
    ours_times, base_times = alternate(ours, baseline, runs=runs)
    ours_rate, base_rate = BULK / median(ours_times), BULK / median(base_times)
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_order_attribution")
        attributed = cursor.fetchone()[0] - attributed_before
    ours_orders = BULK * (runs + 1)
    ctx.log(
        f"row 10 @ {size:,} customers, {hits:,} hits: with attribution {ours_rate:.0f} orders/s, "
        f"without {base_rate:.0f} orders/s; {attributed:,} of {ours_orders:,} orders attributed"
    )
    ingest_row = Row(
        key="10a",
        workload=f"order ingest (orders/bulk of {BULK}) with attribution, {size:,} customers, {hits:,} hits",
        unit="orders/s",
        ours=ours_rate,
        baseline=base_rate,
        sense=HIGHER_IS_BETTER,
        target=TARGET_INGEST,
        rule=lambda ours, base, ratio: ratio >= 0.9,
        note=f"medians of {runs} bulks each; {attributed:,} of {ours_orders:,} orders attributed",
        checks=[
            Check("orders created", seen["created"], 2 * ours_orders),
            Check("orders failed", seen["failed"], 0),
            Check("some attributed", attributed > 0, True),
        ],
    )

    stats_seen = {}

    def stats():
        response = client.get(f"/api/campaigns/{campaign.pk}/stats")
        if response.status_code != 200:
            raise RuntimeError(f"stats answered {response.status_code}: {response.content[:300]!r}")
        stats_seen["api"] = response.json()

    def hand_written():
        with schema_context(schema), connection.cursor() as cursor:
            for sql in w8_stats.HAND_WRITTEN:
                cursor.execute(sql, {"campaign": campaign.pk})
                cursor.fetchall()
            cursor.execute(REVENUE_SQL, {"campaign": campaign.pk})
            stats_seen["sql"] = cursor.fetchone()

    stats_times, sql_times = alternate(stats, hand_written, runs=ctx.scale.query_runs)
    stats_ms, sql_ms = median(stats_times) * 1000, median(sql_times) * 1000
    api, (orders, revenue, _buyers) = stats_seen["api"], stats_seen["sql"]
    ctx.log(f"row 10b: stats with revenue {stats_ms:.1f} ms, SQL {sql_ms:.1f} ms")
    stats_row = Row(
        key="10b",
        workload=f"campaign stats with revenue, {api['recipients']:,} recipients, {orders:,} attributed orders",
        unit="ms",
        ours=stats_ms,
        baseline=sql_ms,
        target=TARGET_STATS,
        rule=lambda ours, base, ratio: ours < 200,
        note=f"medians of {ctx.scale.query_runs}",
        checks=[Check("orders", api["orders"], orders), Check("revenue", api["revenue"], f"{revenue:.2f}")],
    )
    _order_emails_settle(schema)
    return [ingest_row, stats_row]


def _order_emails_settle(schema):
    """The bulks' orders asked for thousands of order confirmations that no worker of this run sends:
    left pending, the transactional requeue of a later row's beat schedule (row 11) would send them all
    in its timed window. They are benchmark artefacts: skipped, with the reason."""
    TransactionalEmail.objects.filter(tenant=schema, status="pending").update(
        status="skipped", reason="benchmark orders (row 10): not sent"
    )
