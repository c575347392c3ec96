"""Fault injection against the real servers. Every test restarts what it stopped."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
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


def database_url():
    """The test database, for worker subprocesses."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class SmtpSink:
    """aiosmtpd handler that keeps every message's recipients."""

    def __init__(self):
        self.recipients = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"

    def count(self):
        with self.lock:
            return len(self.recipients)

    def by_address(self):
        with self.lock:
            return Counter(self.recipients)


@pytest.fixture
def smtp_sink():
    """A real SMTP server on a free loopback port (`.port`) that keeps every message."""
    from aiosmtpd.controller import Controller

    handler = SmtpSink()
    handler.port = free_port()  # aiosmtpd's start-up check cannot use port 0
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


class CeleryWorkers:
    """Real Celery worker subprocesses on this test run's queue, each in its own process group."""

    def __init__(self):
        self.procs = []

    def start(self, *, env, concurrency=2, log=subprocess.DEVNULL):
        from django.conf import settings

        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "crm_project",
                "worker",
                "-Q",
                queue,
                "--pool=prefork",
                "-c",
                str(concurrency),
                "-l",
                "warning",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"fault-{uuid.uuid4().hex[:6]}@%h",
            ],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url(), "CELERY_QUEUE": queue, **env},
            start_new_session=True,
            stdout=log,
            stderr=log,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()


@pytest.fixture
def celery_workers():
    """Start workers with `.start(env=...)`; the queue is purged first and every worker stopped after."""
    from crm_project.celery import app

    with app.connection_for_write() as conn:  # nothing left over from an earlier run
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    workers = CeleryWorkers()
    yield workers
    workers.stop_all()
