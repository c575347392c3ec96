"""TCP reachability of the servers the service talks to: one check for /healthz, the launcher and the
tests (no Django imports: the launcher uses it before settings exist)."""

import socket
from urllib.parse import urlsplit


def tcp_connect(host, port, timeout=1.0):
    """Open and close a TCP connection; raises OSError when nothing answers."""
    with socket.create_connection((host or "127.0.0.1", port), timeout=timeout):
        pass


def url_connect(url, default_port, timeout=1.0):
    parts = urlsplit(url)
    tcp_connect(parts.hostname, parts.port or default_port, timeout)


def reachable(host, port, timeout=0.5):
    return url_reachable(f"tcp://{host}:{port}", port, timeout)


def url_reachable(url, default_port, timeout=1.0):
    try:
        url_connect(url, default_port, timeout)
        return True
    except OSError:
        return False
