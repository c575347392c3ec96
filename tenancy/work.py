"""Periodic work that visits only the tenants that have some: markers of when each tenant next has
work of a kind, written when the work appears, read once per beat tick.

An idle tenant has no marker, so a tick costs one indexed statement however many tenants there are.
The app that owns a kind of work (tracking's roll-up, campaigns' dispatcher, ...) registers it with
`work_kind_register` (a name such as "tracking.rollup" and a probe) and:

- marks it when work appears: `work_mark(kind, due_at=...)` in the transaction that creates the work
  (a campaign scheduled, a campaign starting to send), or `work_mark_soon(kind)` on a hot path (a
  tracking hit), which writes at most once per COALESCE_SECONDS per tenant, kind and process;
- runs a beat task that calls `work_fan_out(kind, per_tenant_task)`: the due markers are claimed in
  one statement and each becomes one task in its tenant's schema, so a busy tenant never delays
  another tenant's work;
- in that per-tenant task, does the work and calls `work_done(kind, claim, again_at=...)`: the marker
  is cleared (or re-armed for `again_at`) only if nothing marked it meanwhile;
- lets `work_sweep` (beat, hourly) ask its probe, in every serving tenant, when that tenant's earliest
  work of the kind is due: a marker lost between a write and its marker (a process killed there) is
  written again, so no work is ever lost, only late by at most the sweep's period.

A claimed marker whose task never finished (its message lost with a Redis flush, its worker killed)
is claimed again by a tick once `claimed_until` has passed. Markers live in PostgreSQL: a Redis
restart loses none. A deactivated tenant's markers wait (ticks skip it) until it serves again.

This module is below the apps that use it: it knows kinds only by the names they register.
"""

import logging
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django_tenants.utils import tenant_context

from .models import Tenant, TenantWork

logger = logging.getLogger(__name__)

# The hit path marks its tenant at most this often per process; `work_done` treats a marker written
# within GRACE_SECONDS before its claim as possibly covering work the run did not see yet (a hit whose
# own mark was coalesced away), and re-arms it for once that window has passed instead of clearing it.
COALESCE_SECONDS = 1.0
GRACE_SECONDS = COALESCE_SECONDS + 2.0
# How long a tick's claim keeps other ticks off a marker: the task's wait in the queue plus its run.
DEFAULT_LEASE_SECONDS = 120
# Markers handed out per tick and kind; the rest wait for the next tick (oldest due first).
FAN_OUT_LIMIT = 1000

TABLE = f"public.{TenantWork._meta.db_table}"
TENANTS = f"public.{Tenant._meta.db_table}"


@dataclass(frozen=True)
class WorkKind:
    name: str
    # In a tenant's schema: when its earliest work of this kind is due (a datetime), or None. The
    # sweep calls it for every serving tenant, so it must be one cheap indexed query.
    probe: object
    lease_seconds: int = DEFAULT_LEASE_SECONDS


KINDS: dict[str, WorkKind] = {}


@dataclass(frozen=True)
class Claim:
    schema_name: str
    token: str


def work_kind_register(name, *, probe, lease_seconds=DEFAULT_LEASE_SECONDS):
    """Declare a kind of periodic work (from the owning app's AppConfig.ready()); idempotent."""
    KINDS[name] = WorkKind(name=name, probe=probe, lease_seconds=lease_seconds)
    return KINDS[name]


def _tenant_key(tenant):
    """(SQL selecting the tenant's id, its parameter): a Tenant, an id, a schema name, or None for the
    tenant the connection is in."""
    if tenant is None:
        tenant = connection.schema_name
    if isinstance(tenant, Tenant):
        tenant = tenant.schema_name
    if isinstance(tenant, int):
        return "t.id = %(tenant)s", tenant
    return "t.schema_name = %(tenant)s", str(tenant)


def work_mark(kind, *, due_at=None, tenant=None):
    """Note that `tenant` (default: the connection's) has work of `kind` due at `due_at` (default:
    now). An upsert that keeps the earliest due time; one statement, in the caller's transaction, so
    the marker commits (or rolls back) with the work it announces. Nothing for the public schema."""
    where, key = _tenant_key(tenant)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {TABLE} AS w (tenant_id, kind, due_at, marked_at)
            SELECT t.id, %(kind)s, COALESCE(%(due)s::timestamptz, statement_timestamp()), statement_timestamp()
            FROM {TENANTS} t WHERE {where}
            ON CONFLICT (tenant_id, kind) DO UPDATE
            SET due_at = LEAST(w.due_at, EXCLUDED.due_at), marked_at = EXCLUDED.marked_at
            """,
            {"kind": kind, "due": due_at, "tenant": key},
        )
        return cursor.rowcount == 1


# (database, schema, kind) -> monotonic time of this process's last committed mark.
_recent_marks: dict[tuple, float] = {}


def work_mark_soon(kind, *, clock=time.monotonic):
    """`work_mark(kind)` for a hot path (every tracking hit): at most one write per COALESCE_SECONDS
    per tenant, kind and process. The time is remembered only once the mark committed, so a mark
    rolled back with its transaction is written again by the next call. True when it wrote."""
    key = (connection.settings_dict["NAME"], connection.schema_name, kind)
    now = clock()
    last = _recent_marks.get(key)
    if last is not None and 0 <= now - last < COALESCE_SECONDS:
        return False
    work_mark(kind)

    def remember():
        _recent_marks[key] = now

    transaction.on_commit(remember)
    return True


def work_marks_forget():
    """Forget which marks this process wrote lately (the next `work_mark_soon` of each writes)."""
    _recent_marks.clear()


def work_claim_due(kind, *, now=None, limit=FAN_OUT_LIMIT, lease_seconds=None):
    """Claim the due markers of `kind` of serving tenants, oldest due first: one statement, which
    skips markers that another tick holds or that a writer has locked. Returns [Claim]."""
    lease = lease_seconds if lease_seconds is not None else _lease(kind)
    with connection.cursor() as cursor:
        # The tenant filter is Tenant.objects.serving(): active, not the template, not public.
        cursor.execute(
            f"""
            WITH due AS (
                SELECT w.id FROM {TABLE} w JOIN {TENANTS} t ON t.id = w.tenant_id
                WHERE w.kind = %(kind)s
                  AND w.due_at <= COALESCE(%(now)s::timestamptz, statement_timestamp())
                  AND (w.claimed_until IS NULL
                       OR w.claimed_until < COALESCE(%(now)s::timestamptz, statement_timestamp()))
                  AND t.is_active AND NOT t.is_template AND t.schema_name <> 'public'
                ORDER BY w.due_at
                LIMIT %(limit)s
                FOR UPDATE OF w SKIP LOCKED
            )
            UPDATE {TABLE} w
            SET claim = gen_random_uuid(),
                claimed_at = COALESCE(%(now)s::timestamptz, statement_timestamp()),
                claimed_until = COALESCE(%(now)s::timestamptz, statement_timestamp())
                                + make_interval(secs => %(lease)s)
            FROM due, {TENANTS} t
            WHERE w.id = due.id AND t.id = w.tenant_id
            RETURNING t.schema_name, w.claim
            """,
            {"kind": kind, "now": now, "limit": limit, "lease": lease},
        )
        return [Claim(schema_name=schema, token=str(token)) for schema, token in cursor.fetchall()]


def _lease(kind):
    registered = KINDS.get(kind)
    return registered.lease_seconds if registered else DEFAULT_LEASE_SECONDS


def work_fan_out(kind, task, *, now=None, limit=FAN_OUT_LIMIT):
    """A beat tick: claim the due markers of `kind` and send `task(claim=<token>)` to each one's
    tenant schema. Run from the public schema. Returns how many tasks it sent.

    When the broker refuses the tasks their claims simply lapse and a later tick sends them again."""
    claims = work_claim_due(kind, now=now, limit=limit)
    if not claims:
        return 0
    sent = 0
    try:
        # One broker connection for the whole tick, and the tick's messages in one batch: kombu's
        # Producer.batch() sends them in one round trip where the transport can (Redis: a pipeline),
        # one by one where it cannot. A batch that fails is sent not at all.
        with task.app.producer_or_acquire() as producer, producer.batch(max_size=FAN_OUT_LIMIT):
            for claim in claims:
                task.apply_async(
                    kwargs={"claim": claim.token},
                    headers={"_schema_name": claim.schema_name},
                    producer=producer,
                )
        sent = len(claims)
    except Exception:  # the broker is down: the claims not sent lapse and a later tick retries them
        logger.warning(
            "periodic work %s: the broker refused the tick's %s tasks; a later tick sends them",
            kind,
            len(claims),
        )
    return sent


def work_hold(kind, claim, *, lease_seconds=None):
    """Extend a claim (a task that goes on as a new task of its own); False when it is no longer held."""
    lease = lease_seconds if lease_seconds is not None else _lease(kind)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET claimed_until = statement_timestamp() + make_interval(secs => %s) "
            "WHERE kind = %s AND claim = %s::uuid",
            [lease, kind, claim],
        )
        return cursor.rowcount == 1


def work_done(kind, claim, *, again_at=None):
    """The claimed run of `kind` finished. Its marker goes away, or becomes due at `again_at` (the
    next work the run knows of, e.g. the next scheduled campaign), unless something marked it since
    (or just before) the claim: then it is due again soon, since the run may not have seen that work.

    A claim that is no longer held (it lapsed and another tick took the marker) changes nothing."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH gone AS (
                DELETE FROM {TABLE} w
                WHERE w.kind = %(kind)s AND w.claim = %(claim)s::uuid AND %(again)s::timestamptz IS NULL
                  AND w.marked_at <= w.claimed_at - make_interval(secs => %(grace)s)
                RETURNING w.id
            )
            UPDATE {TABLE} w
            SET claim = NULL, claimed_at = NULL, claimed_until = NULL,
                due_at = CASE
                    WHEN w.marked_at > w.claimed_at - make_interval(secs => %(grace)s)
                    THEN LEAST(COALESCE(%(again)s::timestamptz, 'infinity'),
                               w.marked_at + make_interval(secs => %(grace)s))
                    ELSE %(again)s::timestamptz
                END
            WHERE w.kind = %(kind)s AND w.claim = %(claim)s::uuid AND NOT EXISTS (SELECT 1 FROM gone)
            """,
            {"kind": kind, "claim": claim, "again": again_at, "grace": GRACE_SECONDS},
        )


def work_run(kind, claim, work):
    """The body of a per-tenant task (in the tenant's schema): `work()` returns when the tenant next
    has work of this kind (or None); then the claim is done. When `work` raises, the claim lapses
    and a tick after its lease runs it again."""
    again_at = work()
    work_done(kind, claim, again_at=again_at)
    return again_at


def work_pending(*, tenant=None):
    """{kind: due_at} of a tenant's markers (the operators' view, and tests)."""
    queryset = TenantWork.objects.all()
    if tenant is None:
        queryset = queryset.filter(tenant__schema_name=connection.schema_name)
    elif isinstance(tenant, Tenant):
        queryset = queryset.filter(tenant=tenant)
    elif isinstance(tenant, int):
        queryset = queryset.filter(tenant_id=tenant)
    else:
        queryset = queryset.filter(tenant__schema_name=tenant)
    return dict(queryset.values_list("kind", "due_at"))


def work_sweep(*, tenants=None):
    """Beat, hourly: ask every registered kind's probe in every serving tenant (or in `tenants`) when
    its work is due, and mark what it finds (keeping any earlier marker). Repairs markers lost between
    a write and its marker; one query per kind and tenant, plus one upsert per kind that has work.
    Returns the marks written."""
    marked = 0
    if tenants is None:
        tenants = Tenant.objects.serving().only("pk", "schema_name")
    for tenant in tenants:
        try:
            with tenant_context(tenant):
                for kind in list(KINDS.values()):
                    due_at = kind.probe()
                    if due_at is not None:
                        work_mark(kind.name, due_at=due_at, tenant=tenant.pk)
                        marked += 1
        except Exception:  # one tenant's trouble never stops the others; the next sweep tries again
            logger.exception("periodic work sweep failed for tenant %s", tenant.schema_name)
    return marked
