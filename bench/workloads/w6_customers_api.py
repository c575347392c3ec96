"""Row 6: `GET /api/customers?search=` and `?ordering=-total_spent` (first page of 50, with tags and
addresses) through the full Django stack, against the equivalent SQL (count, page, tags, addresses)."""

from django.db import connection
from django_tenants.utils import schema_context

from bench.core import Check, GrowthPoint, Row, alternate, percentile

TARGET = "p95 < 50 ms"
PAGE = 50
SEARCH_DOCUMENT = "lower(COALESCE(email, '') || ' ' || first_name || ' ' || last_name || ' ' || phone)"
CASES = [
    # key, label, query string, (WHERE, params), ORDER BY
    (
        "6a",
        "search by name",
        "search=anna%20kov%C3%A1cs",
        (f"{SEARCH_DOCUMENT} LIKE %s AND {SEARCH_DOCUMENT} LIKE %s", ["%anna%", "%kovács%"]),
        "id DESC",
    ),
    (
        "6b",
        "search by email",
        "search=customer7777",
        (f"{SEARCH_DOCUMENT} LIKE %s", ["%customer7777%"]),
        "id DESC",
    ),
    ("6c", "ordering=-total_spent", "ordering=-total_spent", ("true", []), "total_spent DESC, id DESC"),
]
COLUMNS = (
    "id, external_id, email, first_name, last_name, phone, city, country, attributes, email_marketing, "
    "email_transactional, unsubscribed_at, total_spent, order_count, first_order_at, last_order_at, "
    "created_at, updated_at"
)


def _sql(where, params, order_by):
    """What a hand-written endpoint would run: the count, the page, the page's tags and addresses."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM customers_customer WHERE {where}", params)
        count = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT {COLUMNS} FROM customers_customer WHERE {where} ORDER BY {order_by} LIMIT {PAGE}", params
        )
        page = cursor.fetchall()
        ids = [row[0] for row in page]
        cursor.execute(
            "SELECT ct.customer_id, t.name FROM customers_customertag ct JOIN customers_tag t ON t.id = ct.tag_id "
            "WHERE ct.customer_id = ANY(%s)",
            [ids],
        )
        cursor.fetchall()
        cursor.execute("SELECT * FROM customers_customer_address WHERE customer_id = ANY(%s)", [ids])
        cursor.fetchall()
    return count, ids


def run(ctx, *, size, main):
    client = ctx.api()
    points, rows = [], []
    for key, label, query, (where, params), order_by in CASES:
        seen = {}

        def ours(query=query, seen=seen):
            response = client.get(f"/api/customers?{query}")
            if response.status_code != 200:
                raise RuntimeError(f"/api/customers?{query} answered {response.status_code}")
            body = response.json()
            seen["api"] = (body["count"], [item["id"] for item in body["results"]])

        def baseline(where=where, params=params, order_by=order_by, seen=seen):
            with schema_context(ctx.data_schema):
                seen["sql"] = _sql(where, params, order_by)

        runs = max(ctx.scale.query_runs * 2, 10)
        ours_times, base_times = alternate(ours, baseline, runs=runs, warmup=2)
        ours_p95, base_p95 = percentile(ours_times, 0.95) * 1000, percentile(base_times, 0.95) * 1000
        ctx.log(f"row {key} @ {size:,}: API p95 {ours_p95:.1f} ms, SQL p95 {base_p95:.1f} ms ({label})")
        points.append(GrowthPoint(f"6 customers API: {label}", size, ours_p95 / 1000, base_p95 / 1000))
        if main:
            rows.append(
                Row(
                    key=key,
                    workload=f"GET /api/customers?{query.replace('%20', '+')} at {size:,} customers",
                    unit="ms",
                    ours=ours_p95,
                    baseline=base_p95,
                    target=TARGET,
                    rule=lambda ours, base, ratio: ours < 50,
                    note=f"p95 of {runs} requests; {seen['sql'][0]:,} match",
                    checks=[
                        Check("API count = SQL count", seen["api"][0], seen["sql"][0]),
                        Check("API first page = SQL first page", seen["api"][1], seen["sql"][1]),
                    ],
                )
            )
    return points, rows
