"""Fault injection against the real servers. Every test restarts what it stopped."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def require_root_control(command):
    if os.geteuid() != 0 or subprocess.run(["which", command], capture_output=True).returncode != 0:
        if IN_CI:
            pytest.fail(f"fault tests need root and {command} in CI")
        pytest.skip(f"needs root and {command}")


@pytest.fixture
def committed_tenant(django_db_setup, django_db_blocker):
    """A fresh tenant whose data is committed (visible to other processes), dropped afterwards."""
    from tenancy.models import Tenant
    from tenancy.services import tenant_create

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
    settings_db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{settings_db['USER']}@{settings_db['HOST'] or '127.0.0.1'}:{settings_db['PORT'] or 5432}/{settings_db['NAME']}"
    )
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
        wait_for_port(port)
        yield LiveServer(committed_tenant.get_primary_domain().domain, port)
    finally:
        process.terminate()
        process.wait(timeout=15)
