"""A live site for the browser tests: a committed tenant of its own, the web app under gunicorn, a real
Celery worker and a real SMTP sink (aiosmtpd), all on loopback.

pytest-django's `live_server` is not used: its transactional flush would wipe the public tenant rows.
The web server and the worker are subprocesses on the test database; they see only committed rows, so
the tenant is created (and dropped afterwards) outside any test transaction.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

from crm_project.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
# The committed pictures in docs/screenshots are refreshed on request (SCREENSHOTS_DIR=docs/screenshots),
# so an ordinary test run leaves the work tree clean.
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "var" / "screenshots")
LOGS = ROOT / "var" / "browser-tests"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url():
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Processes:
    """gunicorn and a Celery worker with the test database, a queue of their own and the SMTP sink."""

    def __init__(self, *, sink, queue, extra_env=None):
        self.port = free_port()
        self.queue = queue
        self.env = {
            **os.environ,
            **(extra_env or {}),
            "DATABASE_URL": database_url(),
            "DEBUG": "true",
            "APP_URL": f"http://localhost:{self.port}",
            "CELERY_QUEUE": queue,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "MAIL_MAILER": "smtp",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.port),
            "DB_CONN_MAX_AGE": "0",
            "CAMPAIGN_BATCH_SIZE": "4",
            "CAMPAIGN_TASK_SECONDS": "2",
            "LOGIN_MAX_FAILURES": "1000",
            "LOGIN_MAX_FAILURES_PER_CLIENT": "1000",
            "PYTHONUNBUFFERED": "1",
        }
        self.procs = []
        LOGS.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name, args):
        log = open(LOGS / f"{name}.log", "wb")
        proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc.log_path = LOGS / f"{name}.log"
        self.procs.append(proc)
        return proc

    def start(self):
        bin_dir = Path(sys.executable).parent
        self._spawn(
            "web",
            [
                str(bin_dir / "gunicorn"),
                "crm_project.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--timeout",
                "60",
                "--log-level",
                "warning",
            ],
        )
        worker = self._spawn(
            "worker",
            [
                str(bin_dir / "celery"),
                "-A",
                "crm_project",
                "worker",
                "-Q",
                self.queue,
                "--pool=prefork",
                "-c",
                "2",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"browser-{uuid.uuid4().hex[:6]}@%h",
            ],
        )
        self._wait_web()
        self._wait_log(worker, b" ready.")

    def _wait_web(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # it answers (503 only means a broker is down)
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the web server did not start; see " + str(LOGS / "web.log"))

    def _wait_log(self, proc, marker, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if marker in proc.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"no {marker!r} in {proc.log_path}")

    def _check_alive(self):
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited: {proc.log_path.read_text()[-3000:]}")

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def purge_queue(queue):
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


def browser_queue():
    return f"{settings.CELERY_TASK_DEFAULT_QUEUE}.browser"
