"""Test runs get servers' namespaces of their own: each pytest-xdist worker process, and a run in one
process (the serial phase of `make test`), never the ones `make run` uses.

Loaded with `-p tests.parallel` (pyproject's addopts) before Django reads its settings, so the
variables set here are what settings.py, and every worker, beat or server a test starts, see.
pytest-django already gives each worker its own test database (`test_<name>_gw<N>`); this adds
a Redis database, a Celery queue and the RabbitMQ exchanges and queue, suffixed with the worker's id
(`test` outside xdist). Sharing `make run`'s Redis database and queue, a test's leftover tasks were
picked up by the development worker afterwards, for schemas its database does not have.

Tests that stop or restart a shared server (PostgreSQL, Redis, RabbitMQ) are marked `serial`:
`make test` runs them after the parallel phase, alone."""

import os
from urllib.parse import urlsplit, urlunsplit

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... inside an xdist worker
REDIS_DATABASES = 16  # Redis' default `databases`: 0 stays the service's, 15 a run in one process


def _redis_database(url, number):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


def _separate(worker):
    number = int(worker.removeprefix("gw")) + 1 if worker else REDIS_DATABASES - 1
    if number >= REDIS_DATABASES - 1 and worker:
        raise RuntimeError(f"at most {REDIS_DATABASES - 2} test workers share one Redis")
    suffix = worker or "test"
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    os.environ["REDIS_URL"] = _redis_database(redis_url, number)
    if os.environ.get("CELERY_BROKER_URL", "").startswith("redis"):
        os.environ["CELERY_BROKER_URL"] = _redis_database(os.environ["CELERY_BROKER_URL"], number)
    for name, default in (
        ("CELERY_QUEUE", "crm"),
        ("EVENTS_EXCHANGE", "crm.events"),
        ("WEBSHOP_EVENTS_EXCHANGE", "webshop.events"),
        ("WEBSHOP_EVENTS_QUEUE", "crm.webshop.ingest"),
    ):
        os.environ[name] = f"{os.environ.get(name) or default}.{suffix}"


_separate(WORKER)
