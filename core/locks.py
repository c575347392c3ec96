"""PostgreSQL session advisory locks, tried without waiting: "one of these at a time" across every
worker (the events publisher; a tenant's flow dispatcher).

A session lock, not a transaction's: the holder commits many transactions under it, and a process
that dies takes its lock with its connection."""

from contextlib import contextmanager

from django.db import connection


@contextmanager
def advisory_lock(key, *, name=None):
    """Yields whether this session got the lock on `key` (a bigint), or on (`key`, hashtext(`name`))
    when a name is given (a lock per tenant: the key a namespace, the name the schema); released on
    leaving the block."""
    if name is None:
        args, params = "%s", [key]
    else:
        args, params = "%s, hashtext(%s)", [key, name]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_try_advisory_lock({args})", params)
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT pg_advisory_unlock({args})", params)
