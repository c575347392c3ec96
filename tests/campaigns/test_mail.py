"""The wire format of campaign messages, DKIM signing, error classification, signed tokens."""

import base64
import email
import email.policy
import shutil
import smtplib
import subprocess

import pytest
from django.core import signing
from django.core.mail import BadHeaderError, EmailMultiAlternatives

from campaigns import mail, tokens


def _message(**overrides):
    values = {
        "subject": "Árvíztűrő tükörfúrógép — a very long subject line that certainly needs folding " * 2,
        "body": "Szia Ádám!\n.\nA line with = and a very long tail " + "x" * 200 + "\n",
        "from_email": "Bolt Kft. Ünnepi <news@shop.example>",
        "to": ["adam@example.com"],
        "reply_to": ["Help <help@shop.example>"],
        "headers": {
            "Message-ID": "<c1.r2.abc@shop.example>",
            "List-Unsubscribe": "<https://shop.example/u/" + "t" * 150 + ">",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    values.update(overrides)
    message = EmailMultiAlternatives(**values)
    message.attach_alternative("<p>Szia <b>Ádám</b> = &amp;</p>" * 30, "text/html")
    return message


def test_it_serialises_a_campaign_message_that_parses_without_defects():
    message = _message()
    raw = mail.message_bytes(message)
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert [part.defects for part in parsed.walk()] == [[], [], []]
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Subject"] == message.subject
    assert parsed["From"].addresses[0].display_name == "Bolt Kft. Ünnepi"
    assert parsed["Reply-To"] == "Help <help@shop.example>"
    assert parsed["Message-ID"] == "<c1.r2.abc@shop.example>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Parsed from the wire, line breaks are CRLF.
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == message.body
    assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n") == message.alternatives[0][0]
    # Django's own serialisation of the same message carries the same content.
    reference = email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)
    assert reference.get_body(("plain",)).get_content() == message.body


def test_it_leaves_other_shapes_to_django_and_refuses_header_injection():
    assert mail.message_bytes(EmailMultiAlternatives(subject="s", body="b", to=["a@example.com"])) is None
    with pytest.raises(BadHeaderError):
        mail.message_bytes(_message(subject="Hi\r\nBcc: victim@example.com"))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a key")
def test_it_signs_with_dkim_including_the_rfc8058_headers(tmp_path, settings):
    import dkim

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public_der = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    settings.DKIM_SELECTOR = "crm"
    settings.DKIM_PRIVATE_KEY_FILE = str(key)
    assert mail.dkim_enabled()

    raw = mail.message_bytes(_message(from_email="news@shop.example"))
    signed = mail.dkim_sign(raw, domain="shop.example") + raw
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    signature = email.message_from_bytes(signed, policy=email.policy.default)["DKIM-Signature"]
    signed_headers = signature.replace(" ", "").split("h=")[1].split(";")[0].lower().split(":")
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject", "message-id"} <= set(
        signed_headers
    )
    # Tampering with the one-click header breaks the signature.
    assert not dkim.verify(
        signed.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Nope"),
        dnsfunc=lambda name, timeout=5: record,
    )


def test_it_uses_the_dkim_backend_only_for_smtp_with_a_key(settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.DKIM_SELECTOR = ""
    assert type(mail.mail_connection()).__name__ == "CampaignSMTPBackend"
    settings.DKIM_SELECTOR = "crm"
    settings.DKIM_PRIVATE_KEY_FILE = str(tmp_path / "key.pem")
    assert type(mail.mail_connection()).__name__ == "DKIMEmailBackend"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert type(mail.mail_connection()).__name__ == "EmailBackend"


@pytest.mark.parametrize(
    ("exc", "permanent", "broken", "reason"),
    [
        (
            smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}),
            True,
            False,
            "recipient refused: 550 no such user",
        ),
        (
            smtplib.SMTPRecipientsRefused({"a@x": (452, b"mailbox full")}),
            False,
            False,
            "recipient refused: 452 mailbox full",
        ),
        (smtplib.SMTPDataError(554, b"spam"), True, False, "554 spam"),
        (smtplib.SMTPDataError(451, b"later"), False, False, "451 later"),
        (smtplib.SMTPResponseException(421, b"closing"), False, True, "421 closing"),
        (smtplib.SMTPServerDisconnected("gone"), False, True, "SMTP server disconnected: gone"),
        (ConnectionRefusedError(111, "refused"), False, True, "ConnectionRefusedError: [Errno 111] refused"),
        (smtplib.SMTPAuthenticationError(535, b"bad"), False, True, "SMTP authentication failed: 535"),
        (ValueError("odd"), True, False, "ValueError: odd"),
    ],
)
def test_it_classifies_delivery_errors(exc, permanent, broken, reason):
    assert mail.delivery_error(exc) == mail.DeliveryError(permanent=permanent, reason=reason, broken=broken)


def test_it_classifies_esp_errors():
    from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

    assert mail.delivery_error(AnymailRecipientsRefused("refused")).permanent is True
    assert mail.delivery_error(AnymailAPIError("boom", status_code=503)).permanent is False
    assert mail.delivery_error(AnymailAPIError("slow down", status_code=429)).permanent is False
    assert mail.delivery_error(AnymailAPIError("bad", status_code=400)).permanent is True


@pytest.mark.parametrize("kind", sorted(tokens.KINDS))
def test_it_signs_tokens_exactly_as_django_signer_does(kind):
    for ids in [(1,), (12345, 678), (0,)]:
        value = ".".join(tokens._b62(i) for i in ids)
        expected = signing.Signer(salt=f"crm.tracking.{kind}.tenant_x", algorithm="sha256").sign(value)
        token = tokens.make_token(kind, *ids, schema="tenant_x")
        assert token == expected.replace(":", "~")
        assert tokens.read_token(kind, token, schema="tenant_x") == ids
        assert tokens.read_token(kind, token, schema="tenant_y") is None


class _Refusing:
    """aiosmtpd handler: refuses bad@ at RCPT (550), later@ at DATA (451), keeps the rest."""

    def __init__(self):
        self.received = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if envelope.rcpt_tos[0].startswith("later@"):
            return "451 4.3.0 try again later"
        self.received.append((envelope.rcpt_tos[0], envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server():
    import socket

    from aiosmtpd.controller import Controller

    handler = _Refusing()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.mark.parametrize("pipelining", ["always", "never"])
def test_it_sends_a_batch_with_per_message_results(smtp_server, pipelining):
    handler, port = smtp_server
    backend = mail.CampaignSMTPBackend(host="127.0.0.1", port=port, timeout=5)
    backend.pipelining = pipelining
    to = ["ok1@example.com", "bad@example.com", "later@example.com", "ok2@example.com", "dots@example.com"]
    messages = [_message(to=[address], body=f"Hi {address}\n.\n..\n.end\n") for address in to]
    paced = []

    results = backend.send_many(messages, before_each=paced.append)
    backend.close()

    assert results[0] is None and results[3] is None and results[4] is None
    assert isinstance(results[1], smtplib.SMTPRecipientsRefused)
    assert mail.delivery_error(results[1]).permanent is True
    assert isinstance(results[2], smtplib.SMTPDataError) and results[2].smtp_code == 451
    assert paced == [0, 1, 2, 3, 4]
    assert [address for address, _ in handler.received] == [
        "ok1@example.com",
        "ok2@example.com",
        "dots@example.com",
    ]
    parsed = email.message_from_bytes(handler.received[2][1], policy=email.policy.default)
    assert (
        parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
        == "Hi dots@example.com\n.\n..\n.end\n"
    )


def test_it_reports_the_rest_of_a_batch_as_not_attempted_when_the_server_is_gone():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens here
    from campaigns.sender import Messenger

    messenger = Messenger(lambda: mail.CampaignSMTPBackend(host="127.0.0.1", port=port, timeout=2))
    results = messenger.send_many([_message(to=["a@example.com"]), _message(to=["b@example.com"])])
    assert isinstance(results[0], ConnectionRefusedError)
    assert mail.delivery_error(results[0]).broken is True
    assert results[1] is mail.NOT_ATTEMPTED


@pytest.mark.parametrize(("pipelining", "delivered"), [("never", 2), ("always", 1)])
def test_it_sends_nothing_more_once_the_hook_stops_the_batch(smtp_server, pipelining, delivered):
    """A sender that lost its claim stops mid-batch: the message the hook refused and all after it stay
    unsent; in a pipeline the one whose data was about to follow is dropped with the connection."""
    handler, port = smtp_server
    backend = mail.CampaignSMTPBackend(host="127.0.0.1", port=port, timeout=5)
    backend.pipelining = pipelining
    to = [f"ok{i}@example.com" for i in range(4)]

    def before_each(index):
        if index == 2:
            raise mail.StopSending("the lease was lost")

    results = backend.send_many([_message(to=[address]) for address in to], before_each=before_each)
    backend.close()

    assert results == [None] * delivered + [mail.NOT_ATTEMPTED] * (4 - delivered)
    assert backend.connection is None or pipelining == "never"
    # A new connection still works: the server is fine, only that batch stopped.
    again = mail.CampaignSMTPBackend(host="127.0.0.1", port=port, timeout=5)
    assert again.send_many([_message(to=["after@example.com"])]) == [None]
    again.close()
    assert [address for address, _ in handler.received] == to[:delivered] + ["after@example.com"]
