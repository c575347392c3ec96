"""Fault injection against the real servers. Every test restarts what it stopped."""

import os
import subprocess
import sys
import time

import pytest
import requests
from django.db import connection

from events.models import OutboxEvent
from tenancy.models import Tenant
from tenancy.services import tenant_create
from tests import processes
from tests.conftest import IN_CI
from tests.processes import ROOT, database_url, free_port, wait_for_http


def require_root_control(command):
    if os.geteuid() != 0 or subprocess.run(["which", command], capture_output=True).returncode != 0:
        if IN_CI:
            pytest.fail(f"fault tests need root and {command} in CI")
        pytest.skip(f"needs root and {command}")


@pytest.fixture
def committed_tenant(django_db_setup, django_db_blocker):
    """A fresh tenant whose data is committed (visible to other processes), dropped afterwards."""
    slug = f"fault-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    with django_db_blocker.unblock():
        created = tenant_create(
            slug=slug,
            domain=f"{slug}.localhost",
            admin_email="ops@fault.example",
            admin_password="fault-pass-123",
        )
        connection.set_schema_to_public()
        yield created.tenant
        connection.close()  # the server may have restarted: start from a fresh connection
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{created.tenant.schema_name}" CASCADE')
        # Its events live in the public outbox: left there they would be another test's surprise
        # in the next run on a kept (--reuse-db) database.
        OutboxEvent.objects.filter(tenant=created.tenant.schema_name).delete()
        Tenant.objects.filter(pk=created.tenant.pk).delete()


class LiveServer:
    """Requests to 127.0.0.1:<port> with the tenant's Host header (no name resolution needed)."""

    def __init__(self, domain, port):
        self.domain, self.port = domain, port
        self.session = requests.Session()
        self.session.headers["Host"] = domain

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", 20)
        return self.session.request(method, f"http://127.0.0.1:{self.port}{path}", **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def login(self, username, password):
        token = self.post("/api/auth/token", json={"username": username, "password": password}).json()[
            "token"
        ]
        self.session.headers["Authorization"] = f"Token {token}"


@pytest.fixture
def gunicorn_server(committed_tenant):
    """gunicorn serving the test database on a free port, as the committed tenant's host."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url()}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "crm_project.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--timeout",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for_http(port)
        yield LiveServer(committed_tenant.get_primary_domain().domain, port)
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def smtp_sink():
    """A real SMTP server on a free loopback port (`.port`) that keeps every message."""
    with processes.smtp_sink() as sink:
        yield sink


@pytest.fixture
def celery_workers():
    """Start workers with `.start(env=...)`; the queue is purged first and every worker stopped after."""
    workers = processes.CeleryWorkers()
    processes.purge_queue(workers.queue)  # nothing left over from an earlier run
    yield workers
    workers.stop_all()
