"""Claims under a token and a renewable lease: how a sender takes rows to send, exactly once.

A send unit is a row with `status`, `attempts`, `lease_until`, `claim_token` (uuid) and `error`: a
campaign's recipients, and any other sender's due messages with the same columns. The rules:

- `claim` turns up to `limit` due pending rows of one group (a campaign) into `sending`, all under one
  fresh token and a lease, in one statement (`FOR UPDATE SKIP LOCKED`: two workers never take the
  same row). Rows that may no longer be mailed (the caller's `skip` SQL gives a reason, e.g. consent
  withdrawn since the audience was frozen) become `skipped` with the reason in the same statement.
- Every later write of a claimed row (its outcome, a give-back, a renewal) matches the token as well
  as `sending` (`held()`), so a claim whose lease was reclaimed changes nothing: a late outcome of a
  batch never overwrites a newer claim's.
- `renew` extends the lease of the rows the token still holds: one conditional UPDATE.
- `reclaim_expired` puts rows whose lease ran out back to pending without a token (their worker died;
  they go out again with the same Message-ID).
- `Lease` is the worker's side: `keep()` before each message renews the lease once a third of it has
  passed, and raises LeaseLost when the rows are no longer the worker's (it stops sending at once).
  So a batch may take as long as it needs (a slow relay, a low rate) while its worker is alive, and
  the reclaimer only ever takes the rows of a worker that stopped renewing: killed, or frozen for
  longer than the lease. The lease must be longer than one message's hand-off (EMAIL_TIMEOUT).

Lease times are the database's clock (`statement_timestamp()`); the worker counts from just before
it asked, on its own monotonic clock, so it never believes in more lease than the database gave.

A sender with its own table (the campaign sender is `sender.Store` over `RECIPIENT_LEASES` below)
declares `LeasedTable(table=..., group=...)`, claims with `skip=selectors.marketing_skip_reason_sql(...)`
for marketing email, wraps the claim in a `Lease`, passes `lease.keep` into the mail backend's
`before_each` hook (sender.send_batch does, turning LeaseLost into mail.StopSending), writes outcomes
with `held()` and runs `reclaim_expired` from its beat task.
"""

import time
import uuid
from dataclasses import dataclass

from django.db import DatabaseError

from .models import CampaignRecipient

PENDING, SENDING, SKIPPED = "pending", "sending", "skipped"


class LeaseLost(Exception):
    """The claim's rows are no longer its worker's: nothing more of the batch may go out."""


@dataclass(frozen=True)
class LeasedTable:
    """The statements of claiming, renewing, releasing and reclaiming rows of one table.

    Each takes the caller's cursor, so it joins the caller's transaction (the campaign sender holds a
    share lock on its campaign around a claim and around recording a batch)."""

    table: str
    group: str  # the column a claim is taken within, e.g. "campaign_id"

    def held(self, alias):
        """The predicate every write of a claimed row carries; its one parameter is the token."""
        return f"{alias}.status = '{SENDING}' AND {alias}.claim_token = %s"

    def claim(self, cursor, *, group_id, limit, lease_seconds, columns, skip=None):
        """Claim up to `limit` due pending rows of `group_id`, in id order, under a new token.

        `columns` are returned for each row (SQL over the row, alias `u`); `skip` is SQL over the row
        giving why it may not be sent any more, or NULL. Returns (token, held rows as tuples of
        `columns`, number skipped)."""
        token = uuid.uuid4()
        reason = skip or "NULL::text"
        cursor.execute(
            f"""
            WITH picked AS (
                SELECT id FROM {self.table}
                WHERE {self.group} = %s AND status = '{PENDING}'
                  AND (lease_until IS NULL OR lease_until <= clock_timestamp())
                ORDER BY id
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            ),
            verdict AS (
                SELECT u.id, {reason} AS reason FROM {self.table} AS u JOIN picked ON picked.id = u.id
            )
            UPDATE {self.table} AS u
            SET status = CASE WHEN v.reason IS NULL THEN '{SENDING}' ELSE '{SKIPPED}' END,
                attempts = u.attempts + CASE WHEN v.reason IS NULL THEN 1 ELSE 0 END,
                lease_until = CASE WHEN v.reason IS NULL
                                   THEN statement_timestamp() + make_interval(secs => %s) END,
                claim_token = CASE WHEN v.reason IS NULL THEN %s::uuid END,
                error = coalesce(v.reason, u.error)
            FROM verdict AS v
            WHERE u.id = v.id
            RETURNING u.status, {", ".join(columns)}
            """,
            [group_id, limit, lease_seconds, token],
        )
        rows = cursor.fetchall()
        held = sorted(row[1:] for row in rows if row[0] == SENDING)
        return token, held, len(rows) - len(held)

    def renew(self, cursor, *, token, ids, lease_seconds):
        """Extend the lease of the rows `token` still holds; returns how many it holds."""
        cursor.execute(
            f"""
            UPDATE {self.table} AS u
            SET lease_until = statement_timestamp() + make_interval(secs => %s)
            WHERE u.id = ANY(%s) AND {self.held("u")}
            """,
            [lease_seconds, list(ids), token],
        )
        return cursor.rowcount

    def release(self, cursor, *, token, ids, status=PENDING, due_in=None):
        """Rows of the claim that were never tried go to `status` (pending: due after `due_in`
        seconds, or at once); the attempt does not count. Returns how many the claim still held."""
        cursor.execute(
            f"""
            UPDATE {self.table} AS u
            SET status = %s, attempts = greatest(u.attempts - 1, 0), claim_token = NULL,
                lease_until = CASE WHEN %s::text = '{PENDING}' AND %s::float8 IS NOT NULL
                                   THEN clock_timestamp() + make_interval(secs => %s::float8) END
            WHERE u.id = ANY(%s) AND {self.held("u")}
            """,
            [status, status, due_in, due_in, list(ids), token],
        )
        return cursor.rowcount

    def reclaim_expired(self, cursor, *, now, group_ids, status=PENDING):
        """Rows of `group_ids` whose lease ran out before `now` go to `status` without a token: their
        worker is gone, and whatever it still writes under its token changes nothing."""
        cursor.execute(
            f"""
            UPDATE {self.table}
            SET status = %s, lease_until = NULL, claim_token = NULL
            WHERE status = '{SENDING}' AND lease_until < %s AND {self.group} = ANY(%s)
            """,
            [status, now, list(group_ids)],
        )
        return cursor.rowcount


class Lease:
    """A claim as its worker holds it: the token, the rows, and when the lease was last made sure of.

    `renew(token=, ids=, lease_seconds=)` is the store's call of `LeasedTable.renew`; `taken_at` is the
    worker's clock just before it asked for the claim."""

    def __init__(self, *, token, ids, seconds, renew, taken_at, clock=time.monotonic):
        self.token = token
        self.ids = list(ids)
        self.seconds = seconds
        self.renew = renew
        self.clock = clock
        self.renewed_at = taken_at
        self.lost = ""

    def keep(self):
        """Before each message: renew once a third of the lease has passed. Raises LeaseLost when the
        rows are no longer ours (reclaimed while this worker stood still), or when the database
        could not renew it and less than a third of it is left."""
        if self.lost:
            raise LeaseLost(self.lost)
        asked = self.clock()
        held_for = asked - self.renewed_at
        if held_for < self.seconds / 3:
            return
        try:
            held = self.renew(token=self.token, ids=self.ids, lease_seconds=self.seconds)
        except DatabaseError as exc:
            if held_for < self.seconds * 2 / 3:
                return  # it still holds for a while; the next message tries again
            self._lose(f"the lease could not be renewed ({type(exc).__name__}: {exc})")
        if held < len(self.ids):
            self._lose(
                f"the lease ran out after {held_for:.1f} s and {len(self.ids) - held} of "
                f"{len(self.ids)} rows were reclaimed"
            )
        self.renewed_at = asked

    def _lose(self, reason):
        self.lost = reason
        raise LeaseLost(reason)


# The campaign recipients are claimed, renewed and reclaimed under these leases (sender.Store claims,
# jobs.leases_reclaim_expired reclaims; flows' sender shares the table).
RECIPIENT_LEASES = LeasedTable(table=CampaignRecipient._meta.db_table, group="campaign_id")
