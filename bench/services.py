"""Outside programs the load rows need (Postfix's smtp-sink, wrk, gunicorn, a Celery worker):
found or installed, started on a free port, watched for memory, stopped."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

SMTP_SINK_PATHS = ("smtp-sink", "/usr/sbin/smtp-sink")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def find_program(*names):
    for name in names:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def ensure_debian_package(*, program_names, package, log):
    """The program, installing its Debian package when it is missing and we may (root + apt-get)."""
    found = find_program(*program_names)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log(f"{program_names[0]} is missing and cannot be installed here (needs root and apt-get)")
        return None
    log(f"{program_names[0]} is missing: installing the Debian package '{package}' (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=False, capture_output=True)
    if package == "postfix":
        # The package starts the mail server; the benchmark only needs its smtp-sink program.
        subprocess.run(["service", "postfix", "stop"], check=False, capture_output=True)
    return find_program(*program_names)


class Process:
    """A child process with its log file; stopped (with its children) on exit."""

    def __init__(self, args, *, log_path, env=None, cwd=None):
        self.log_path = Path(log_path)
        self.handle = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, stdout=self.handle, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, needle, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return True
            if self.popen.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def stop(self, timeout=15.0):
        if self.popen.poll() is None:
            try:
                children = psutil.Process(self.popen.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
            for child in children:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class RssWatcher:
    """Samples the resident memory of a process tree; `peak_process_mb` is the largest single process
    (a Celery prefork child, say), `peak_total_mb` the whole tree at its largest."""

    def __init__(self, pid, interval=0.25):
        self.pid = pid
        self.interval = interval
        self.peak_process_mb = 0.0
        self.peak_total_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                processes = [root, *root.children(recursive=True)]
                sizes = []
                for process in processes:
                    try:
                        sizes.append(process.memory_info().rss / 1024**2)
                    except psutil.NoSuchProcess:
                        pass
                if sizes:
                    self.peak_process_mb = max(self.peak_process_mb, max(sizes))
                    self.peak_total_mb = max(self.peak_total_mb, sum(sizes))
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)


def python_module(*args):
    return [sys.executable, "-m", *args]
