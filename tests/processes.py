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
import urllib.error
import urllib.request
import uuid
from collections import Counter
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection

from core.net import reachable
from crm_project.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[1]


def database_url():
    """DATABASE_URL of the test database (test_<name>): what a subprocess needs to see this run's data."""
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


def wait_for_http(port, timeout=60):
    """Until a web server on `port` answers HTTP (any status): its port opens before its workers have
    imported the app, which on a busy machine takes seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            return
        except urllib.error.HTTPError:
            return  # it answers (a 404 for an unknown host, a 503 with a broker down)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"no HTTP answer on {port}")


def purge_queue(queue):
    """Drop task messages an earlier run left on the queue."""
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


class CeleryWorkers:
    """`celery -A crm_project worker` subprocesses, each in its own process group (a SIGKILL takes its
    pool children too), on the test database and `queue` (default: this run's queue)."""

    def __init__(self, *, queue=None):
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
    """The tests' one SMTP server: a real aiosmtpd server on a free loopback port (`.port`) that keeps
    every message it accepts.

    - `messages`: (recipients, bytes) per message; `envelopes`: aiosmtpd's envelopes (with `mail_from`);
      `emails(to=None)`: the messages parsed (policy.default), only those to `to` if given;
      `wait_for(predicate)`: the (recipients, parsed message) pairs matching, waiting for one to arrive.
    - `delay` (seconds) makes it slow, so that a worker can be caught mid-batch.
    - `refuse_next`: replies to give instead of accepting, one per message (a 5xx one at RCPT, any
      other at DATA); a subclass refuses by address with `rcpt_reply` and `data_reply`.
    """

    def __init__(self):
        self.messages = []
        self.envelopes = []
        self.delay = 0.0
        self.refuse_next = []
        self.lock = threading.Lock()
        self.port = free_port()  # aiosmtpd's start-up check cannot use port 0
        self.controller = None

    def start(self):
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def rcpt_reply(self, address):
        """The reply refusing this recipient, or None to accept it."""
        if self.refuse_next and self.refuse_next[0].startswith("5"):
            return self.refuse_next.pop(0)
        return None

    def data_reply(self, envelope):
        """The reply refusing this message, or None to accept it."""
        return self.refuse_next.pop(0) if self.refuse_next else None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_reply(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.data_reply(envelope)
        if reply:
            return reply
        with self.lock:
            self.envelopes.append(envelope)
            self.messages.append(
                (list(envelope.rcpt_tos), bytes(envelope.original_content or envelope.content))
            )
        return "250 OK"

    def clear(self):
        with self.lock:
            self.messages.clear()
            self.envelopes.clear()

    def count(self):
        with self.lock:
            return sum(len(rcpts) for rcpts, _ in self.messages)

    def by_address(self):
        with self.lock:
            return Counter(rcpt for rcpts, _ in self.messages for rcpt in rcpts)

    def parsed(self):
        """(recipients, parsed message) per message."""
        with self.lock:
            raw = list(self.messages)
        parser = BytesParser(policy=policy.default)
        return [(rcpts, parser.parsebytes(data)) for rcpts, data in raw]

    def emails(self, to=None):
        return [msg for _, msg in self.parsed() if to is None or msg["To"] == to]

    def wait_for(self, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [(rcpts, msg) for rcpts, msg in self.parsed() if predicate(rcpts, msg)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError("no such message arrived at the SMTP sink")


@contextlib.contextmanager
def smtp_sink(sink=None):
    """A real SMTP server (`sink`, else a new SmtpSink) for the duration of the block."""
    sink = (sink or SmtpSink()).start()
    try:
        yield sink
    finally:
        sink.stop()
