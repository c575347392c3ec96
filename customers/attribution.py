"""Revenue attribution: which email an order is credited to (PRODUCT.md "Revenue attribution").

An order goes to the customer's last human click on an email within the tenant's
`attribution_click_days` before `placed_at`; failing that, to the last human open within
`attribution_open_days` (0 turns that kind of touch off). Machine opens and test sends never count
(the sources below leave them out). Each order is attributed once, when it is first recorded: in the
transaction that records it, or for the bulk API in one statement over the request's orders right
after them; `attribution_rebuild` recomputes a tenant after its windows changed.

Touches live in the apps above this one (STYLE 13: the arrows never loop), so each of them plugs a
*touch source* in at start-up (`touch_source_register`): one SELECT over its own tables giving the
columns of TOUCH_COLUMNS, human touches only. The campaign source is tracking's raw hits; a flow app
adds its step emails the same way. Live attribution and the rebuild write the rows of the same SQL
(`_credits_sql`: the orders LATERAL-joined to `_last_touch_sql` over the UNION ALL of the sources),
over the orders given or over every order, so the two cannot disagree. PostgreSQL pushes the customer and time predicates into each
branch of the UNION ALL, so each source must be readable through an index on (customer_id, touched_at).
"""

from decimal import Decimal

from django.db import connection, models

from core.sql import id_array
from events.services import json_time_sql, outbox_insert_sql, outbox_kick
from tenancy.models import Tenant

from .models import NON_COUNTING_ORDER_STATUSES, Order, OrderAttribution

# customer_id bigint, touched_at timestamptz, touch 'click'|'open', campaign_id bigint|NULL,
# flow_id bigint|NULL, step text|NULL, touch_id bigint (a tie-break between touches of the same instant).
TOUCH_COLUMNS = ("customer_id", "touched_at", "touch", "campaign_id", "flow_id", "step", "touch_id")

# name -> SQL of one source, filled by the apps above at start-up (tracking: campaign emails).
TOUCH_SOURCES = {}

DEFAULT_CLICK_DAYS = 5
DEFAULT_OPEN_DAYS = 1
TOP_CAMPAIGNS = 5


def touch_source_register(*, name, sql):
    """Add (or replace) a source of touches; `sql` is a SELECT of TOUCH_COLUMNS, in that order."""
    TOUCH_SOURCES[name] = sql


def _last_touch_sql(*, customer, placed):
    """The last touch that earns an order placed at `placed` by `customer` (SQL expressions): a click
    within the click window wins over any open; at most one row."""
    union = "\nUNION ALL\n".join(f"({sql})" for _, sql in sorted(TOUCH_SOURCES.items()))
    # The outer range (the wider window) is what the (customer_id, touched_at) index scans; the OR
    # below then picks clicks and opens each within its own window.
    return f"""
        SELECT t.touch, t.touched_at, t.campaign_id, t.flow_id, t.step
        FROM ({union}) AS t ({", ".join(TOUCH_COLUMNS)})
        WHERE t.customer_id = {customer}
          AND t.touched_at <= {placed}
          AND t.touched_at >= {placed} - greatest(%(click_days)s, %(open_days)s) * interval '1 day'
          AND ((t.touch = 'click' AND %(click_days)s > 0
                AND t.touched_at >= {placed} - %(click_days)s * interval '1 day')
            OR (t.touch = 'open' AND %(open_days)s > 0
                AND t.touched_at >= {placed} - %(open_days)s * interval '1 day'))
        ORDER BY (t.touch = 'click') DESC, t.touched_at DESC, t.touch_id DESC
        LIMIT 1
    """


# The attribution row's columns, in the order `_credits_sql` gives them.
CREDIT_COLUMNS = (
    "order_id, customer_id, touch, touched_at, campaign_id, flow_id, step, placed_at, total, counts, "
    "attributed_at"
)


def _credits_sql(orders):
    """SELECT of the attribution rows (CREDIT_COLUMNS) earned by the orders of `orders`, a FROM item
    aliased `o` with the order's columns: live attribution and the rebuild both write these rows."""
    return f"""
        SELECT o.id AS order_id, o.customer_id, lt.touch, lt.touched_at, lt.campaign_id, lt.flow_id,
               lt.step, o.placed_at, o.total, NOT (o.status = ANY(%(non_counting)s)) AS counts,
               now() AS attributed_at
        FROM {orders}
        CROSS JOIN LATERAL ({_last_touch_sql(customer="o.customer_id", placed="o.placed_at")}) AS lt
    """


def attribution_windows():
    """(click_days, open_days) of the current tenant."""
    tenant = getattr(connection, "tenant", None)
    if getattr(tenant, "attribution_click_days", None) is not None:
        return tenant.attribution_click_days, tenant.attribution_open_days
    # A worker or the bus consumer in schema_context: the connection knows only the schema's name.
    row = (
        Tenant.objects.filter(schema_name=connection.schema_name)
        .values_list("attribution_click_days", "attribution_open_days")
        .first()
    )
    return row or (DEFAULT_CLICK_DAYS, DEFAULT_OPEN_DAYS)


def attribution_payload(attribution):
    """What `GET /api/orders/{id}` and `order.attributed` say an order was attributed to."""
    if attribution is None:
        return None
    return {
        "campaign": attribution.campaign_id,
        "flow": attribution.flow_id,
        "step": attribution.step,
        "touch": attribution.touch,
        "touched_at": attribution.touched_at,
    }


def orders_attribute(*, order_ids):
    """Credit recorded orders that have no attribution yet to their customers' last touches. Returns
    how many were credited (an order no touch earns, or one attributed before, is not).

    One statement for any number of orders (a hot path: every order the webshop pushes; the bulk API
    attributes its whole request at once): the orders LATERAL-joined to the last-touch lookup through
    the touch index, the insert, and the `order.attributed` events written from the insert's
    RETURNING. The order's primary key on the attribution makes a second attribution impossible, so
    an order re-delivered after a push that failed midway is credited then, and only once.
    """
    if not TOUCH_SOURCES or not order_ids:
        return 0
    click_days, open_days = attribution_windows()
    if not click_days and not open_days:
        return 0
    table, orders = OrderAttribution._meta.db_table, Order._meta.db_table
    # What the event says of the order, as event_emit would store it (the order's fields, then the touch).
    reported = outbox_insert_sql(
        event_type="order.attributed",
        data=f"""jsonb_build_object(
                     'order_id', o.id, 'external_id', o.external_id, 'customer_id', o.customer_id,
                     'total', o.total::text, 'currency', o.currency, 'status', o.status,
                     'placed_at', {json_time_sql("o.placed_at")},
                     'campaign', a.campaign_id, 'flow', a.flow_id, 'step', a.step, 'touch', a.touch,
                     'touched_at', {json_time_sql("a.touched_at")})""",
        source="credited AS a JOIN pending AS o ON o.id = a.order_id",
        order_by="o.id",
    )
    sql = f"""
        WITH pending AS MATERIALIZED (
            SELECT o.id, o.external_id, o.customer_id, o.total, o.currency, o.status, o.placed_at
            FROM {orders} AS o
            WHERE o.id = ANY(%(orders)s::bigint[])
              AND NOT EXISTS (SELECT 1 FROM {table} AS done WHERE done.order_id = o.id)
        ),
        credited AS (
            INSERT INTO {table} ({CREDIT_COLUMNS})
            {_credits_sql("pending AS o")}
            ON CONFLICT (order_id) DO NOTHING
            RETURNING order_id, touch, touched_at, campaign_id, flow_id, step
        ),
        reported AS ({reported})
        SELECT count(*) FROM credited
    """
    params = {
        "orders": id_array(order_ids),
        "non_counting": list(NON_COUNTING_ORDER_STATUSES),
        "click_days": click_days,
        "open_days": open_days,
        "schema": connection.schema_name,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        credited = cursor.fetchone()[0]
    if credited:
        outbox_kick()
    return credited


def order_attribution_follow(*, order):
    """Keep an attributed order's figures in step with the order: its total, and whether it still
    counts (a cancelled or refunded order leaves the revenue). One UPDATE by primary key."""
    OrderAttribution.objects.filter(order_id=order.pk).exclude(
        total=order.total, counts=order.status not in NON_COUNTING_ORDER_STATUSES
    ).update(total=order.total, counts=order.status not in NON_COUNTING_ORDER_STATUSES)


def attribution_rebuild(*, click_days=None, open_days=None):
    """Recompute every order's attribution of the current tenant in SQL, as if each order had been
    attributed when it arrived with today's windows. Returns {"orders", "attributed", "removed",
    "changed"}.

    One statement: the orders LATERAL-joined to the same last-touch query as live attribution; rows
    no longer earned are deleted, the rest upserted (a concurrent live attribution of a new order
    meets the rebuild's row in ON CONFLICT instead of failing). No events: nothing new happened.
    """
    if click_days is None or open_days is None:
        current = attribution_windows()
        click_days = current[0] if click_days is None else click_days
        open_days = current[1] if open_days is None else open_days
    table, orders = OrderAttribution._meta.db_table, Order._meta.db_table
    if not TOUCH_SOURCES or (not click_days and not open_days):
        fresh = f"SELECT * FROM {table} WHERE false"
    else:
        fresh = _credits_sql(f"{orders} AS o")
    sql = f"""
        WITH fresh AS MATERIALIZED ({fresh}),
        gone AS (
            DELETE FROM {table} a
            WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.order_id = a.order_id)
            RETURNING 1
        ),
        written AS (
            INSERT INTO {table} ({CREDIT_COLUMNS})
            SELECT {CREDIT_COLUMNS} FROM fresh
            ON CONFLICT (order_id) DO UPDATE
               SET customer_id = excluded.customer_id, touch = excluded.touch,
                   touched_at = excluded.touched_at, campaign_id = excluded.campaign_id,
                   flow_id = excluded.flow_id, step = excluded.step, placed_at = excluded.placed_at,
                   total = excluded.total, counts = excluded.counts, attributed_at = excluded.attributed_at
             WHERE ({table}.touch, {table}.touched_at, {table}.campaign_id, {table}.flow_id,
                    {table}.step, {table}.total, {table}.counts)
                   IS DISTINCT FROM
                   (excluded.touch, excluded.touched_at, excluded.campaign_id, excluded.flow_id,
                    excluded.step, excluded.total, excluded.counts)
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM {orders}), (SELECT count(*) FROM fresh),
               (SELECT count(*) FROM gone), (SELECT count(*) FROM written)
    """
    params = {
        "click_days": click_days,
        "open_days": open_days,
        "non_counting": list(NON_COUNTING_ORDER_STATUSES),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        total, attributed, removed, changed = cursor.fetchone()
    return {"orders": total, "attributed": attributed, "removed": removed, "changed": changed}


# --- reads ----------------------------------------------------------------------------------------


def attributed_revenue(*, campaign_ids=None, flow_id=None, since=None):
    """{campaign_id or (flow_id, step): {"orders", "revenue", "customers"}} of the orders that still
    count, each read from the covering (campaign_id) / (flow_id, step) index."""
    rows = OrderAttribution.objects.filter(counts=True)
    if campaign_ids is not None:
        rows = rows.filter(campaign_id__in=list(campaign_ids))
        key = ("campaign_id",)
    else:
        rows = rows.filter(flow_id=flow_id)
        key = ("flow_id", "step")
    if since is not None:
        rows = rows.filter(placed_at__gte=since)
    figures = {}
    for *group, orders, revenue, customers in (
        rows.values_list(*key)
        .annotate(
            orders=models.Count("order_id"),
            revenue=models.Sum("total"),
            customers=models.Count("customer_id", distinct=True),
        )
        .order_by()
    ):
        figures[group[0] if len(group) == 1 else tuple(group)] = {
            "orders": orders,
            "revenue": revenue or Decimal("0.00"),
            "customers": customers,
        }
    return figures


def revenue_since(*, since):
    """Attributed revenue and orders placed since `since` that still count, and the campaigns and flows
    that earned most of it: {"revenue", "orders", "top_campaigns": [(campaign_id, orders, revenue)],
    "top_flows": [(flow_id, orders, revenue)]}."""
    rows = OrderAttribution.objects.filter(counts=True, placed_at__gte=since)
    totals = rows.aggregate(orders=models.Count("order_id"), revenue=models.Sum("total"))
    top = list(
        rows.filter(campaign_id__isnull=False)
        .values_list("campaign_id")
        .annotate(orders=models.Count("order_id"), revenue=models.Sum("total"))
        .order_by("-revenue", "campaign_id")[:TOP_CAMPAIGNS]
    )
    top_flows = list(
        rows.filter(flow_id__isnull=False)
        .values_list("flow_id")
        .annotate(orders=models.Count("order_id"), revenue=models.Sum("total"))
        .order_by("-revenue", "flow_id")[:TOP_CAMPAIGNS]
    )
    return {
        "revenue": totals["revenue"] or Decimal("0.00"),
        "orders": totals["orders"],
        "top_campaigns": top,
        "top_flows": top_flows,
    }
