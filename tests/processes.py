"""Real processes for the tests that are about them: Celery workers on this run's test database, an
SMTP server that keeps what it receives, and what starting a server needs (the database's URL, a free
port, waiting for it to listen)."""

import asyncio
import contextlib
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
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

from core.net import reachable

ROOT = Path(__file__).resolve().parents[1]


def database_url():
    """DATABASE_URL of the test database (test_<name>): what a subprocess needs to see this run's data."""
    from django.conf import settings

    parts = urlsplit(settings.DATABASE_URL)
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable("127.0.0.1", port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def purge_queue(queue):
    """Drop task messages an earlier run left on the queue."""
    from crm_project.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


class CeleryWorkers:
    """`celery -A crm_project worker` subprocesses, each in its own process group (a SIGKILL takes its
    pool children too), on the test database and `queue` (default: this run's queue)."""

    def __init__(self, *, queue=None):
        from django.conf import settings

        self.queue = queue or settings.CELERY_TASK_DEFAULT_QUEUE
        self.procs = []

    def start(self, *, env=None, pool="prefork", concurrency=2, stdout=None, stderr=None):
        """`env` is laid over os.environ plus DATABASE_URL and CELERY_QUEUE. Output is discarded
        unless `stdout` / `stderr` say otherwise (subprocess.PIPE, a file)."""
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "crm_project",
                "worker",
                "-Q",
                self.queue,
                f"--pool={pool}",
                "-c",
                str(concurrency),
                "-l",
                "warning",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"test-{uuid.uuid4().hex[:6]}@%h",
            ],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url(), "CELERY_QUEUE": self.queue, **(env or {})},
            start_new_session=True,
            stdout=subprocess.DEVNULL if stdout is None else stdout,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc):
        """SIGKILL, as a crash or the OOM killer would."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()


@contextlib.contextmanager
def celery_worker(*, queue=None, **start):
    """One worker for the duration of the block (see CeleryWorkers.start for the arguments)."""
    workers = CeleryWorkers(queue=queue)
    try:
        yield workers.start(**start)
    finally:
        workers.stop_all()


class SmtpSink:
    """An aiosmtpd handler that keeps every message: (recipients, bytes). `delay` (seconds) makes it
    slow, so that a worker can be caught mid-batch."""

    def __init__(self):
        self.messages = []
        self.delay = 0.0
        self.lock = threading.Lock()
        self.port = None

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.messages.append(
                (list(envelope.rcpt_tos), bytes(envelope.original_content or envelope.content))
            )
        return "250 OK"

    def clear(self):
        with self.lock:
            self.messages.clear()

    def count(self):
        with self.lock:
            return sum(len(rcpts) for rcpts, _ in self.messages)

    def by_address(self):
        with self.lock:
            return Counter(rcpt for rcpts, _ in self.messages for rcpt in rcpts)


@contextlib.contextmanager
def smtp_sink():
    """A real SMTP server on a free loopback port (`.port`) for the duration of the block."""
    from aiosmtpd.controller import Controller

    handler = SmtpSink()
    handler.port = free_port()  # aiosmtpd's start-up check cannot use port 0
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()
