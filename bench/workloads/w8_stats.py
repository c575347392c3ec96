"""Row 8: `GET /api/campaigns/{id}/stats` of a campaign with one recipient per customer (1M at full
size), against the hand-written aggregate over the same tables."""

from django.db import connection
from django_tenants.utils import schema_context

from bench import data
from bench.core import Check, Row, alternate, median
from campaigns.models import Campaign

TARGET = "≤ 1.5× and < 200 ms"
LINKS = 5
HOURS = 72
# Recipient states by a hash of the customer id (deterministic): mostly delivered, a few of the rest.
RECIPIENTS_INSERT = """
INSERT INTO campaign_recipients (campaign_id, customer_id, email, status, message_id, attempts, error,
                                 sent_at, delivered_at)
SELECT %(campaign)s, c.id, c.email,
       CASE WHEN h < 0.90 THEN 'delivered' WHEN h < 0.95 THEN 'sent' WHEN h < 0.97 THEN 'bounced'
            WHEN h < 0.98 THEN 'failed' WHEN h < 0.981 THEN 'complained' ELSE 'pending' END,
       '', 1, '', now() - interval '3 days', now() - interval '3 days'
FROM (SELECT id, email, (hashtext('r' || id) & 2147483647)::float8 / 2147483647 AS h
      FROM customers_customer WHERE email IS NOT NULL) c
ON CONFLICT (campaign_id, email) DO NOTHING
"""
HAND_WRITTEN = [
    """
    SELECT count(*),
           count(*) FILTER (WHERE status IN ('pending', 'sending')),
           count(*) FILTER (WHERE status IN ('sent', 'delivered', 'bounced', 'complained')),
           count(*) FILTER (WHERE status IN ('delivered', 'complained')),
           count(*) FILTER (WHERE status = 'failed'),
           count(*) FILTER (WHERE status = 'bounced'),
           count(*) FILTER (WHERE status = 'complained'),
           s.opens, s.unique_opens, s.machine_opens, s.clicks, s.unique_clicks, s.unsubscribes
    FROM campaign_recipients r LEFT JOIN tracking_campaign_stats s ON s.campaign_id = r.campaign_id
    WHERE r.campaign_id = %(campaign)s
    GROUP BY s.opens, s.unique_opens, s.machine_opens, s.clicks, s.unique_clicks, s.unsubscribes
    """,
    """
    SELECT l.url, COALESCE(s.clicks, 0), COALESCE(s.unique_clicks, 0)
    FROM campaign_links l LEFT JOIN tracking_link_stats s ON s.link_id = l.id
    WHERE l.campaign_id = %(campaign)s ORDER BY 2 DESC
    """,
    """
    SELECT hour, opens, clicks FROM tracking_hourly_stats WHERE campaign_id = %(campaign)s ORDER BY hour
    """,
]


def _campaign(schema):
    """The stats campaign: recipients for every customer, and the counters the roll-up would keep."""
    with schema_context(schema):
        campaign = Campaign.objects.filter(name="bench: stats").first()
        if campaign is not None:
            return campaign
        data.setup_timeout()  # 1M recipients: longer than a web request may take
        campaign = Campaign.objects.create(name="bench: stats", subject="Stats", status="sent")
        with connection.cursor() as cursor:
            cursor.execute(RECIPIENTS_INSERT, {"campaign": campaign.pk})
            recipients = cursor.rowcount
            cursor.execute(
                "INSERT INTO campaign_links (campaign_id, url, created_at) "
                "SELECT %s, 'https://shop.example.com/p/' || n, now() FROM generate_series(1, %s) n",
                [campaign.pk, LINKS],
            )
            unique_opens, unique_clicks = recipients * 30 // 100, recipients * 6 // 100
            cursor.execute(
                "INSERT INTO tracking_campaign_stats (campaign_id, opens, unique_opens, machine_opens, clicks, "
                "unique_clicks, unsubscribes, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now())",
                [
                    campaign.pk,
                    unique_opens * 2,
                    unique_opens,
                    recipients // 10,
                    unique_clicks * 2,
                    unique_clicks,
                    recipients // 500,
                ],
            )
            cursor.execute(
                "INSERT INTO tracking_link_stats (link_id, campaign_id, clicks, unique_clicks) "
                "SELECT id, campaign_id, %s / id::int %% 1000 + 10, %s / id::int %% 500 + 5 FROM campaign_links "
                "WHERE campaign_id = %s",
                [unique_clicks, unique_clicks, campaign.pk],
            )
            cursor.execute(
                "INSERT INTO tracking_hourly_stats (campaign_id, hour, opens, clicks) "
                "SELECT %s, date_trunc('hour', now()) - n * interval '1 hour', 1000 / (n + 1), 200 / (n + 1) "
                "FROM generate_series(0, %s) n",
                [campaign.pk, HOURS - 1],
            )
    data.vacuum(schema, "campaign_recipients")
    return campaign


def run(ctx, *, size):
    schema = ctx.data_schema
    campaign = _campaign(schema)
    client = ctx.api()
    seen = {}

    def ours():
        response = client.get(f"/api/campaigns/{campaign.pk}/stats")
        if response.status_code != 200:
            raise RuntimeError(f"stats answered {response.status_code}: {response.content[:300]!r}")
        seen["api"] = response.json()

    def baseline():
        with schema_context(schema), connection.cursor() as cursor:
            results = []
            for sql in HAND_WRITTEN:
                cursor.execute(sql, {"campaign": campaign.pk})
                results.append(cursor.fetchall())
            seen["sql"] = results

    ours_times, base_times = alternate(ours, baseline, runs=ctx.scale.query_runs)
    ours_ms, base_ms = median(ours_times) * 1000, median(base_times) * 1000
    api, (totals, links, hours) = seen["api"], seen["sql"]
    total = totals[0]
    ctx.log(f"row 8 @ {total[0]:,} recipients: API {ours_ms:.1f} ms, SQL {base_ms:.1f} ms")
    return Row(
        key="8",
        workload=f"campaign stats for a {total[0]:,}-recipient campaign",
        unit="ms",
        ours=ours_ms,
        baseline=base_ms,
        target=TARGET,
        rule=lambda ours, base, ratio: ratio <= 1.5 and ours < 200,
        note=f"medians of {ctx.scale.query_runs}",
        checks=[
            Check("recipients", api["recipients"], total[0]),
            Check("pending", api["pending"], total[1]),
            Check("sent", api["sent"], total[2]),
            Check("delivered", api["delivered"], total[3]),
            Check("failed", api["failed"], total[4]),
            Check("unique_opens", api["unique_opens"], total[8]),
            Check("links", len(api["links"]), len(links)),
            Check("timeline hours", len(api["timeline"]), len(hours)),
        ],
    )
