"""Work to do once a transaction commits, asked for by many statements of it and done once."""

from functools import partial

from django.db import connection, transaction


def on_commit_once(func, *args):
    """`func(*args)` once the current transaction commits, however often it is asked for within it
    (a bulk import emits thousands of events and wants one publisher kick). Looking into Django's
    pending callbacks rather than keeping a flag stays right after a rollback, which discards the
    callback together with what it announced. Outside a transaction: at once, every time."""
    callback = partial(func, *args) if args else func
    if connection.in_atomic_block and any(
        _same(pending, func, args) for _, pending, _ in connection.run_on_commit
    ):
        return
    transaction.on_commit(callback)


def _same(pending, func, args):
    if not args:
        return pending is func
    return getattr(pending, "func", None) is func and getattr(pending, "args", None) == args
