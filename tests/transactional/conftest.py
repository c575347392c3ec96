import socket
from email import policy
from email.parser import BytesParser

import pytest

from tests.events.conftest import fresh_tenant  # noqa: F401  (a fixture)


class Sink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it accepted."""

    def __init__(self):
        self.envelopes = []
        self.refuse_next = []  # SMTP replies to give instead of accepting, one per message

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_next and self.refuse_next[0].startswith("5"):
            return self.refuse_next.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_next:
            return self.refuse_next.pop(0)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self, to=None):
        parsed = [BytesParser(policy=policy.default).parsebytes(e.original_content) for e in self.envelopes]
        return [m for m in parsed if to is None or m["To"] == to]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_sink(settings):
    from aiosmtpd.controller import Controller

    sink = Sink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.port = port
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.DKIM_SELECTOR = ""
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def eager_tasks():
    """Tasks run in-process as they are enqueued (the real task code, the real SMTP backend)."""
    from crm_project.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before
