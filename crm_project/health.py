"""`/healthz`: reachability of the database, Redis and the brokers (200 when all are up, else 503)."""

import sys
import time

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import JsonResponse
from django.views.defaults import server_error as default_server_error

from core.net import url_connect


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _tcp_check(url, default_port):
    def check():
        url_connect(url, default_port)

    return check


def _check_redis():
    redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()


def checks():
    found = {"database": _check_database}
    if settings.REDIS_URL:
        found["redis"] = _check_redis
    broker = settings.CELERY_BROKER_URL
    if broker.startswith(("amqp", "pyamqp")):
        found["celery_broker"] = _tcp_check(broker, 5672)
    if settings.EVENTS_BROKER_URL:
        found["events_broker"] = _tcp_check(settings.EVENTS_BROKER_URL, 5672)
    return found


def healthz(request):
    results, healthy = {}, True
    for name, check in checks().items():
        started = time.monotonic()
        try:
            check()
            results[name] = {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
        except Exception as exc:  # any failure of a dependency is reported, never raised
            healthy = False
            results[name] = {"ok": False, "error": exc.__class__.__name__}
    response = JsonResponse({"status": "ok" if healthy else "unavailable", "checks": results})
    response.status_code = 200 if healthy else 503
    response["Cache-Control"] = "no-store"
    return response


def server_error(request, *args, **kwargs):
    """handler500: a database that is unreachable (restarting, failing over) is a 503, not a 500."""
    exc = sys.exc_info()[1]
    if isinstance(exc, (OperationalError, InterfaceError)):
        response = JsonResponse(
            {"detail": "The service is temporarily unavailable; retry shortly."}, status=503
        )
        response["Retry-After"] = "5"
        return response
    return default_server_error(request, *args, **kwargs)
