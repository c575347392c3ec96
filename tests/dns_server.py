"""A real DNS server on loopback for tests (dnslib's DNSServer with a resolver of our own).

It answers the TXT records a test publishes, NXDOMAIN for names it has nothing at, and SERVFAIL for
names marked failing. The code under test reaches it through DNS_NAMESERVERS, as it would reach any
nameserver: nothing of dnspython is replaced.
"""

import socket
import threading

from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def _name(value):
    return str(value).rstrip(".").lower()


class _Resolver(BaseResolver):
    def __init__(self, zone):
        self.zone = zone

    def resolve(self, request, handler):
        reply = request.reply()
        qname = _name(request.q.qname)
        with self.zone.lock:
            failing = qname in self.zone.failing
            values = list(self.zone.records.get(qname, []))
        if failing:
            reply.header.rcode = RCODE.SERVFAIL
        elif not values:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in values:
                # One record, split into strings of at most 255 bytes, as DNS providers store long values.
                data = value.encode()
                chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        return reply


class TestDNSServer:
    """`publish(name, value)`, `unpublish(name)`, `fail(name)`; `nameserver` is "127.0.0.1:<port>"."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self):
        self.records = {}
        self.failing = set()
        self.lock = threading.Lock()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = DNSServer(
            _Resolver(self),
            address="127.0.0.1",
            port=self.port,
            logger=DNSLogger("-request,-reply,-truncated,-error", prefix=False),
        )

    @property
    def nameserver(self):
        return f"127.0.0.1:{self.port}"

    def publish(self, name, value):
        with self.lock:
            self.records.setdefault(_name(name), []).append(value)

    def unpublish(self, name):
        with self.lock:
            self.records.pop(_name(name), None)

    def fail(self, name):
        with self.lock:
            self.failing.add(_name(name))

    def publish_records(self, records):
        """Publish what the product asks to publish: [{"name", "type": "TXT", "value"}, ...]."""
        for record in records:
            assert record["type"] == "TXT"
            self.publish(record["name"], record["value"])

    def start(self):
        self.server.start_thread()
        return self

    def stop(self):
        self.server.stop()
        self.server.server.server_close()


def silent_nameserver():
    """A bound UDP socket that never answers: a nameserver that times out. Close it when done."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"
