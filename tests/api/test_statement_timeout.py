"""Statement timeouts: a web request's statement runs at most DB_STATEMENT_TIMEOUT_MS and then the
answer is a clear 503 (or a 400 naming the input to blame), never a 500; workers and management
commands get the longer DB_WORKER_STATEMENT_TIMEOUT_MS.

A statement that waits for a lock counts against its timeout like one that computes, so a table
locked by another connection makes any request's statement run out of time, deterministically.
"""

import os
import subprocess
import sys
import threading

import psycopg
import pytest
from django.db import connection, connections

from tests.conftest import TENANT_A
from tests.processes import ROOT, database_url

SHORT_MS = 300
HOLD_SECONDS = 20  # without a timeout, a request would wait this long and then succeed


@pytest.fixture
def short_timeout(settings):
    settings.DB_STATEMENT_TIMEOUT_MS = SHORT_MS


@pytest.fixture
def customers_locked(tenant):
    """Another connection holds an exclusive lock on the tenant's customers table (until the test ends,
    or HOLD_SECONDS at most)."""
    locked, done = threading.Event(), threading.Event()
    failures = []

    def hold():
        try:
            with psycopg.connect(database_url(), autocommit=False) as other:
                other.execute("SET lock_timeout = '10s'")
                other.execute(
                    f'LOCK TABLE "{tenant.schema_name}".customers_customer IN ACCESS EXCLUSIVE MODE'
                )
                locked.set()
                done.wait(HOLD_SECONDS)
                other.rollback()
        except Exception as error:  # reported by the fixture, not lost in the thread
            failures.append(error)
            locked.set()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(15) and not failures, failures
    yield
    done.set()
    thread.join(30)


def _rules(count):
    rules = [{"field": f"attributes.k{i}", "operator": "contains", "value": f"v{i}"} for i in range(count)]
    return {"combinator": "or", "rules": rules}


def test_it_runs_a_web_request_with_the_web_statement_timeout(api, settings):
    settings.DB_STATEMENT_TIMEOUT_MS = 4321
    assert api.get("/api/customers").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "4321ms"


def test_it_answers_503_when_an_api_request_runs_out_of_time(api, short_timeout, customers_locked):
    response = api.get("/api/customers")
    assert response.status_code == 503
    assert "longer than the database allows" in response.json()["detail"]
    assert response["Retry-After"]


def test_it_answers_400_naming_the_rules_when_a_segment_preview_is_too_expensive(
    api, short_timeout, customers_locked
):
    response = api.post("/api/segments/preview", {"rules": _rules(1000)}, format="json")
    assert response.status_code == 400
    assert f"{SHORT_MS} ms" in response.json()["rules"][0]


def test_it_answers_503_when_an_admin_page_runs_out_of_time(
    client, admin_user, short_timeout, customers_locked
):
    client.force_login(admin_user)
    response = client.get("/admin/customers/customer/", HTTP_HOST=TENANT_A["domain"])
    assert response.status_code == 503
    assert "longer than the database allows" in response.content.decode()


def test_it_gives_a_new_connection_the_workers_timeout(settings, db):
    settings.DB_WORKER_STATEMENT_TIMEOUT_MS = 123456
    fresh = connections.create_connection("default")
    try:
        with fresh.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "123456ms"
    finally:
        fresh.close()


def test_it_gives_a_management_command_the_workers_timeout(db):
    code = (
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SHOW statement_timeout')\n"
        "    print(cursor.fetchone()[0])\n"
    )
    env = {**os.environ, "DATABASE_URL": database_url(), "DB_WORKER_STATEMENT_TIMEOUT_MS": "2700000"}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "45min"
