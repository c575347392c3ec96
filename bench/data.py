"""Scratch tenants and their generated data: all in SQL (generate_series + setseed), so a run is
deterministic and a million customers take seconds, not minutes."""

import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django_tenants.utils import schema_context
from rest_framework.authtoken.models import Token

from core.db import statement_timeout_set
from events.models import OutboxEvent
from tenancy.clone import clone_schema
from tenancy.models import Domain, Tenant
from tenancy.services import public_tenant_ensure, template_ensure, tenant_create

SEED = 0.4242  # setseed() takes a float in [-1, 1]

FIRST_NAMES = (
    "Anna Bence Csaba Dóra Emese Ferenc Gábor Hanna István Judit Kata László Márta Nóra Olivér Péter "
    "Réka Sára Tamás Zsófia Ádám Balázs Dániel Eszter Flóra Gergő Henrik Ilona János Klára Lili Máté "
    "Noémi Orsolya Pál Rita Sándor Tímea Viktor Zoltán"
).split()
LAST_NAMES = (
    "Nagy Kovács Tóth Szabó Horváth Varga Kiss Molnár Németh Farkas Balogh Papp Takács Juhász Lakatos "
    "Mészáros Oláh Simon Rácz Fekete Szilágyi Török Fehér Balázs Gál Kis Szűcs Kocsis Orsós Pintér "
    "Fodor Szalai Sipos Magyar Lukács Gulyás Biró Király Katona László"
).split()
# Weighted by repetition: Budapest is a third of everyone.
CITIES = (
    "Budapest Budapest Budapest Budapest Debrecen Szeged Miskolc Pécs Győr Nyíregyháza Kecskemét "
    "Székesfehérvár"
).split()
TAGS = ("vip", "newsletter", "wholesale", "returning", "b2b")
TAG_SHARE = {"vip": 0.05, "newsletter": 0.4, "wholesale": 0.02, "returning": 0.25, "b2b": 0.03}


def _sql_array(values):
    return "ARRAY[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


# One row per g: the random draws r1..r8 are taken in a sub-select so that one customer's fields are
# drawn together (order_count decides whether it has order dates). No parallel plan inside INSERT,
# so setseed() makes the sequence of draws, and with it every value, the same on every run.
CUSTOMERS_SELECT = f"""
SELECT
    'customer' || g || '@example.com' AS email,
    'ext-' || g AS external_id,
    ({_sql_array(FIRST_NAMES)})[1 + floor(r1 * {len(FIRST_NAMES)})::int] AS first_name,
    ({_sql_array(LAST_NAMES)})[1 + floor(r2 * {len(LAST_NAMES)})::int] AS last_name,
    '+3630' || lpad(g::text, 7, '0') AS phone,
    ({_sql_array(CITIES)})[1 + floor(r3 * {len(CITIES)})::int] AS city,
    CASE WHEN r4 < 0.70 THEN 'HU' WHEN r4 < 0.85 THEN 'AT' WHEN r4 < 0.95 THEN 'DE' ELSE 'SK' END AS country,
    r5 < 0.80 AS email_marketing,
    floor(r6 * r6 * 7)::int AS order_count,
    r7, r8, g
FROM (
    SELECT g, random() r1, random() r2, random() r3, random() r4, random() r5, random() r6,
           random() r7, random() r8
    FROM generate_series(%(first)s, %(last)s) AS g
) draws
"""

CUSTOMERS_INSERT = f"""
INSERT INTO customers_customer (
    email, external_id, first_name, last_name, phone, city, country, attributes, email_marketing,
    email_transactional, unsubscribed_at, total_spent, order_count, first_order_at, last_order_at,
    created_at, updated_at)
SELECT
    email, external_id, first_name, last_name, phone, city, country,
    jsonb_build_object('source', CASE WHEN r8 < 0.5 THEN 'web' ELSE 'shop' END),
    email_marketing, true,
    CASE WHEN r8 < 0.03 THEN now() - interval '30 days' END,
    CASE WHEN order_count = 0 THEN 0 ELSE round((order_count * (2000 + r7 * 30000))::numeric, 2) END,
    order_count,
    CASE WHEN order_count > 0 THEN now() - (r7 * 365 + r8 * 700) * interval '1 day' END,
    CASE WHEN order_count > 0 THEN now() - r7 * 365 * interval '1 day' END,
    now() - r8 * 1000 * interval '1 day',
    now()
FROM ({CUSTOMERS_SELECT}) generated
"""

# The CSV the importer reads (the columns of its documented format) and COPY reads for the baseline.
CSV_COLUMNS = (
    "email",
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "city",
    "country",
    "tags",
    "email_marketing",
)
CSV_SELECT = f"""
SELECT email, external_id, first_name, last_name, phone, city, country,
       CASE WHEN r7 < 0.4 THEN 'newsletter' WHEN r7 < 0.45 THEN 'newsletter, vip' ELSE '' END AS tags,
       CASE WHEN email_marketing THEN 'true' ELSE 'false' END AS email_marketing
FROM ({CUSTOMERS_SELECT}) generated
ORDER BY g
"""


# --- scratch tenants ------------------------------------------------------------------------------


def tenant_slug(prefix, name):
    return f"{prefix}-{name}"


def scratch_tenant_create(*, slug, with_admin=False):
    """A fresh tenant through the product's own provisioning (tenancy.services.tenant_create)."""
    connection.set_schema_to_public()
    public_tenant_ensure()
    scratch_tenants_drop(schemas=[slug.replace("-", "_")])
    created = tenant_create(
        slug=slug,
        domain=f"{slug}.localhost",
        name=f"Benchmark {slug}",
        admin_email=f"bench@{slug}.localhost" if with_admin else None,
        admin_password="bench-password-1" if with_admin else None,
    )
    return created.tenant


def scratch_tenant_find(*, slug):
    """The scratch tenant an earlier `--keep` run left (None when `--reuse` did not keep one)."""
    connection.set_schema_to_public()
    return Tenant.objects.filter(schema_name=slug.replace("-", "_")).first()


def scratch_tenants_drop_but_reusable(*, prefix):
    """`--reuse`: drop the scratch tenants except the data tenant (its customers, campaigns and hits
    are grown only where they fall short) and row 11's idle clones (cloned only up to the count
    asked). Returns how many are kept."""
    connection.set_schema_to_public()
    base = prefix.replace("-", "_")
    names = list(
        Tenant.objects.filter(schema_name__startswith=base + "_").values_list("schema_name", flat=True)
    )
    kept = [name for name in names if name == f"{base}_data" or name.startswith(f"{base}_idle_")]
    scratch_tenants_drop(schemas=[name for name in names if name not in kept])
    return len(kept)


def scratch_tenants_drop(*, prefix=None, schemas=None):
    """Drop scratch tenants (their schema, domain and row), by schema name prefix or by name."""
    connection.set_schema_to_public()
    tenants = Tenant.objects.all()
    if prefix is not None:
        tenants = tenants.filter(schema_name__startswith=prefix.replace("-", "_") + "_")
    if schemas is not None:
        tenants = tenants.filter(schema_name__in=schemas)
    names = list(tenants.values_list("schema_name", flat=True))
    names += [name for name in (schemas or []) if name not in names]
    for name in names:
        if name in ("public", settings.TENANT_TEMPLATE_SCHEMA):
            continue
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            Domain.objects.filter(tenant__schema_name=name).delete()
            Tenant.objects.filter(schema_name=name).delete()
    return len(names)


def outbox_delete(*, tenants=None, prefix=None):
    """The scratch tenants' outbox events (a million after a 1M import), in one statement: the ORM's
    delete() would load every row first."""
    table = OutboxEvent._meta.db_table
    with schema_context("public"), connection.cursor() as cursor:
        if tenants is not None:
            cursor.execute(f"DELETE FROM {table} WHERE tenant = ANY(%s)", [list(tenants)])
        if prefix is not None:
            cursor.execute(f"DELETE FROM {table} WHERE tenant LIKE %s", [prefix.replace("-", "_") + "\\_%"])


def bulk_tenants_create(*, prefix, count, start=1):
    """`count` more tenants for the migrate measurement: each a clone of the migrated template (what
    tenant_create does, minus its per-tenant migrate and first user), so 1,000 take minutes."""
    connection.set_schema_to_public()
    template_ensure()
    made = []
    for number in range(start, start + count):
        slug = f"{prefix}-m{number:04d}"
        schema = slug.replace("-", "_")
        with transaction.atomic():
            tenant = Tenant(schema_name=schema, name=f"Migrate bench {number}")
            tenant.save()
            Domain.objects.create(domain=f"{slug}.localhost", tenant=tenant, is_primary=True)
            clone_schema(source=settings.TENANT_TEMPLATE_SCHEMA, target=schema)
        made.append(schema)
    connection.set_schema_to_public()
    return made


# --- generated data ---------------------------------------------------------------------------------


def customers_count(schema):
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_customer")
        return cursor.fetchone()[0]


def customers_grow(*, schema, size):
    """Grow the tenant's customers to `size` (ids 1..size), with tags; returns seconds spent.

    Growing 10k -> 100k -> 1M adds rows 10,001.. and 100,001..: each range has its own seed, so the
    1M-customer tenant is the same whichever sizes ran before.
    """
    started = time.perf_counter()
    have = customers_count(schema)
    if have >= size:
        return 0.0
    with schema_context(schema), transaction.atomic(), connection.cursor() as cursor:
        for first in range(have + 1, size + 1, 100_000):
            last = min(size, first + 99_999)
            cursor.execute("SELECT setseed(%s)", [_range_seed(first)])
            cursor.execute(CUSTOMERS_INSERT, {"first": first, "last": last})
        for name in TAGS:
            cursor.execute(
                "INSERT INTO customers_tag (name, created_at) SELECT %s, now() "
                "WHERE NOT EXISTS (SELECT 1 FROM customers_tag WHERE lower(name) = %s)",
                [name, name],
            )
        # A hash of (customer, tag) rather than random(): the join's plan cannot change who gets a tag.
        cursor.execute(
            """
            INSERT INTO customers_customertag (customer_id, tag_id, created_at)
            SELECT c.id, t.id, now()
            FROM customers_customer c CROSS JOIN customers_tag t
            JOIN (SELECT * FROM unnest(%s::text[], %s::float8[]) AS s (name, share)) s ON s.name = t.name
            WHERE c.id > %s
              AND (hashtext(c.id::text || ':' || t.name) & 2147483647)::float8 / 2147483647 < s.share
            """,
            [list(TAG_SHARE), list(TAG_SHARE.values()), have],
        )
        cursor.execute("ANALYZE customers_customer")
        cursor.execute("ANALYZE customers_customertag")
    # Index-only scans need the visibility map (autovacuum would get there later).
    vacuum(schema, "customers_customer", "customers_customertag")
    return time.perf_counter() - started


def _range_seed(first):
    return (SEED * 1_000_003 + first) % 1_000_000 / 1_000_000


def setup_timeout():
    """Set-up statements are no web request: the workers' statement timeout (core.db), not the one an
    in-process API request of an earlier row left on this process's connection."""
    statement_timeout_set(connection, settings.DB_WORKER_STATEMENT_TIMEOUT_MS)


def vacuum(schema, *tables):
    """VACUUM ANALYZE outside any transaction (autocommit connection)."""
    setup_timeout()
    with schema_context(schema), connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'VACUUM ANALYZE "{schema}"."{table}"')


def csv_write(*, path, rows):
    """The CSV of `rows` generated customers (same generator, own seed), via COPY ... TO STDOUT."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [SEED / 3])
        query = CSV_SELECT.replace("%(first)s", "1").replace("%(last)s", str(int(rows)))
        with (
            open(path, "wb") as handle,
            cursor.cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy,
        ):
            for chunk in copy:
                handle.write(chunk)
    return path


def admin_token(schema):
    """An API token of the scratch tenant's first admin (created by tenant_create)."""
    with schema_context(schema):
        user = get_user_model().objects.filter(is_superuser=True).order_by("id").first()
        token, _ = Token.objects.get_or_create(user=user)
        return token.key
