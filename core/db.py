"""Statement timeouts: no web request holds a database connection as long as it likes.

Every connection starts with DB_WORKER_STATEMENT_TIMEOUT_MS (Celery workers, management commands: long
but finite; 0 leaves the server's default), set once when it connects. A web request switches its
connection to DB_STATEMENT_TIMEOUT_MS (core.middleware.StatementTimeoutMiddleware); the value is
remembered on the connection, so a web process pays one `SET` per connection, not one per request.

A statement that runs out of time raises PostgreSQL's query_canceled (57014): the API answers 503, or
400 naming the field when the view says its input is to blame (`statement_timeout_blames`), the admin
answers 503: never a 500.
"""

import logging

from django.conf import settings
from django.db import DatabaseError, OperationalError

logger = logging.getLogger(__name__)

QUERY_CANCELED = "57014"


def statement_timeout_set(connection, milliseconds):
    """Give the connection's session this statement timeout (0: the server's default), unless it has it."""
    connection.ensure_connection()
    raw = connection.connection
    # A session-level SET lasts until the connection closes, unless the transaction it ran in rolls
    # back: only one made outside a transaction is remembered (inside one, tests' transactions, it is
    # simply made again next time).
    remember = not connection.in_atomic_block
    if remember and getattr(raw, "crm_statement_timeout_ms", None) == milliseconds:
        return
    with raw.cursor() as cursor:
        if milliseconds:
            cursor.execute(f"SET statement_timeout = {int(milliseconds)}")
        else:
            cursor.execute("RESET statement_timeout")
    raw.crm_statement_timeout_ms = milliseconds if remember else None


def on_connection_created(sender, connection, **kwargs):
    """connection_created: every new connection gets the workers' (and commands') timeout."""
    if connection.vendor == "postgresql" and settings.DB_WORKER_STATEMENT_TIMEOUT_MS:
        statement_timeout_set(connection, settings.DB_WORKER_STATEMENT_TIMEOUT_MS)


def web_statement_timeout_apply(connection):
    """At the start of a web request; a database that is down is left to the request's own handling."""
    try:
        statement_timeout_set(connection, settings.DB_STATEMENT_TIMEOUT_MS)
    except DatabaseError as error:
        logger.warning("statement timeout not set: %s", error.__class__.__name__)


def is_statement_timeout(error):
    """Whether a database error is a statement that ran out of time (or was cancelled)."""
    return (
        isinstance(error, OperationalError) and getattr(error.__cause__, "sqlstate", None) == QUERY_CANCELED
    )
