"""The wire format of campaign messages, DKIM signing per sender domain, error classification, signed
tokens."""

import base64
import email
import email.policy
import smtplib
import socket

import dkim
import pytest
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core import signing
from django.core.mail import BadHeaderError, EmailMultiAlternatives
from django_tenants.utils import schema_context

from campaigns import mail, senders, tokens
from campaigns.models import SenderDomain
from campaigns.sender import Messenger
from tests import processes
from tests.conftest import verified_sender_domain


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


def _dkim_fields(signed):
    signature = email.message_from_bytes(signed, policy=email.policy.default)["DKIM-Signature"]
    fields = {}
    for part in signature.replace("\r\n", "").split(";"):
        name, _, value = part.partition("=")
        fields[name.strip()] = "".join(value.split())
    return fields


def _published(sender_domain):
    """dkimpy's dnsfunc answering what the tenant was told to publish, and nothing else."""
    records = {r["name"]: r["value"] for r in senders.sender_domain_records(sender_domain=sender_domain)}

    def dnsfunc(name, timeout=5):
        value = records.get(name.decode().rstrip("."))
        return value.encode() if value else None

    return dnsfunc


def test_it_signs_a_tenants_message_with_its_verified_domains_own_key(verified_domain):
    signer = mail.signer_for("Shop <news@shop.example>")
    assert (signer.domain, signer.selector) == ("shop.example", verified_domain.dkim_selector)

    raw = mail.message_bytes(_message(from_email="Shop <news@shop.example>"))
    signed = signer.sign(raw) + raw

    assert dkim.verify(signed, dnsfunc=_published(verified_domain))
    fields = _dkim_fields(signed)
    assert (fields["d"], fields["s"], fields["a"]) == (
        "shop.example",
        verified_domain.dkim_selector,
        "rsa-sha256",
    )
    signed_headers = fields["h"].lower().split(":")
    assert {"from", "subject", "message-id", "list-unsubscribe", "list-unsubscribe-post"} <= set(
        signed_headers
    )
    # Tampering with the one-click header breaks the signature.
    assert not dkim.verify(
        signed.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Nope"),
        dnsfunc=_published(verified_domain),
    )


def test_it_refuses_a_sender_the_tenant_may_not_use_before_signing(verified_domain, other_tenant):
    verified_sender_domain("pending.example")  # made, then set back to pending below
    SenderDomain.objects.filter(domain="pending.example").update(status="pending")
    for refused in ["news@pending.example", "news@sub.shop.example", "news@elsewhere.example"]:
        with pytest.raises(mail.SenderRefused):
            mail.signer_for(refused)
    # Tenant A's verified domain is nothing to tenant B.
    with schema_context(other_tenant.schema_name):
        with pytest.raises(mail.SenderRefused, match="not on a verified sender domain"):
            mail.signer_for("news@shop.example")
    assert mail.delivery_error(mail.SenderRefused("x")) == mail.DeliveryError(
        permanent=False, reason="sender refused: x"
    )


def _platform_key(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "platform.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_it_signs_the_platform_address_with_the_platform_key_or_not_at_all(tenant, settings, tmp_path):
    settings.DKIM_SELECTOR = ""
    assert mail.signer_for(f"Shop <{settings.MAIL_FROM_ADDRESS}>") is None

    path, record = _platform_key(tmp_path)
    settings.DKIM_SELECTOR = "platform"
    settings.DKIM_PRIVATE_KEY_FILE = str(path)
    signer = mail.signer_for(settings.MAIL_FROM_ADDRESS)
    raw = mail.message_bytes(_message(from_email=settings.MAIL_FROM_ADDRESS))
    signed = signer.sign(raw) + raw
    fields = _dkim_fields(signed)
    assert (fields["d"], fields["s"]) == (settings.MAIL_FROM_ADDRESS.rpartition("@")[2], "platform")
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    # The platform key never signs for a tenant's claimed domain.
    with pytest.raises(mail.SenderRefused):
        mail.signer_for("news@shop.example")


@pytest.fixture
def envelope_server():
    with processes.smtp_sink() as sink:
        yield sink, sink.port


@pytest.mark.parametrize("pipelining", ["always", "never"])
def test_it_sends_signed_messages_and_refuses_foreign_senders_over_smtp(
    verified_domain, other_tenant, envelope_server, settings, pipelining
):
    handler, port = envelope_server
    settings.MAIL_RETURN_PATH = ""
    backend = mail.CampaignSMTPBackend(host="127.0.0.1", port=port, timeout=5)
    backend.pipelining = pipelining
    messages = [
        _message(from_email="Shop <news@shop.example>", to=["one@example.com"]),
        _message(from_email="news@not-ours.example", to=["two@example.com"]),
        _message(from_email="Shop <news@shop.example>", to=["three@example.com"]),
    ]
    results = backend.send_many(messages)
    backend.close()

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], mail.SenderRefused)
    assert [(envelope.mail_from, envelope.rcpt_tos) for envelope in handler.envelopes] == [
        ("news@shop.example", ["one@example.com"]),
        ("news@shop.example", ["three@example.com"]),
    ]
    for _, raw in handler.messages:
        assert dkim.verify(raw, dnsfunc=_published(verified_domain))
        assert _dkim_fields(raw)["d"] == "shop.example"
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["From"].addresses[0].domain == "shop.example"

    # Tenant B, sending as tenant A's verified domain: refused, nothing reaches the server.
    handler.clear()
    with schema_context(other_tenant.schema_name):
        backend = mail.CampaignSMTPBackend(host="127.0.0.1", port=port, timeout=5)
        [result] = backend.send_many([_message(from_email="news@shop.example")])
        backend.close()
    assert isinstance(result, mail.SenderRefused)
    assert handler.messages == []


def test_it_uses_the_return_path_setting_as_the_envelope_sender(verified_domain, envelope_server, settings):
    handler, port = envelope_server
    settings.MAIL_RETURN_PATH = "bounces@bounce.platform.example"
    backend = mail.CampaignSMTPBackend(host="127.0.0.1", port=port, timeout=5)
    assert backend.send_messages([_message(from_email="Shop <news@shop.example>")]) == 1
    backend.close()
    [envelope] = handler.envelopes
    sender, raw = envelope.mail_from, envelope.original_content
    assert sender == "bounces@bounce.platform.example"
    assert email.message_from_bytes(raw, policy=email.policy.default)["From"].addresses[0].addr_spec == (
        "news@shop.example"
    )


def test_it_uses_the_signing_smtp_backend_for_smtp_only(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert type(mail.mail_connection()).__name__ == "CampaignSMTPBackend"
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


class _Refusing(processes.SmtpSink):
    """Refuses bad@ at RCPT (550), later@ at DATA (451), keeps the rest."""

    def rcpt_reply(self, address):
        return "550 5.1.1 no such user" if address.startswith("bad@") else None

    def data_reply(self, envelope):
        return "451 4.3.0 try again later" if envelope.rcpt_tos[0].startswith("later@") else None


@pytest.fixture
def smtp_server():
    with processes.smtp_sink(_Refusing()) as sink:
        yield sink, sink.port


@pytest.mark.parametrize("pipelining", ["always", "never"])
def test_it_sends_a_batch_with_per_message_results(smtp_server, pipelining):
    handler, port = smtp_server
    backend = mail.CampaignSMTPBackend(host="127.0.0.1", port=port, timeout=5)
    backend.pipelining = pipelining
    to = ["ok1@example.com", "bad@example.com", "later@example.com", "ok2@example.com", "dots@example.com"]
    messages = [
        _message(to=[address], body=f"Hi {address}\n.\n..\n.end\n", from_email=settings.MAIL_FROM_ADDRESS)
        for address in to
    ]
    paced = []

    results = backend.send_many(messages, before_each=paced.append)
    backend.close()

    assert results[0] is None and results[3] is None and results[4] is None
    assert isinstance(results[1], smtplib.SMTPRecipientsRefused)
    assert mail.delivery_error(results[1]).permanent is True
    assert isinstance(results[2], smtplib.SMTPDataError) and results[2].smtp_code == 451
    assert paced == [0, 1, 2, 3, 4]
    assert [rcpts[0] for rcpts, _ in handler.messages] == [
        "ok1@example.com",
        "ok2@example.com",
        "dots@example.com",
    ]
    parsed = email.message_from_bytes(handler.messages[2][1], policy=email.policy.default)
    assert (
        parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
        == "Hi dots@example.com\n.\n..\n.end\n"
    )


def test_it_reports_the_rest_of_a_batch_as_not_attempted_when_the_server_is_gone():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens here

    messenger = Messenger(lambda: mail.CampaignSMTPBackend(host="127.0.0.1", port=port, timeout=2))
    results = messenger.send_many(
        [
            _message(to=[to], from_email=settings.MAIL_FROM_ADDRESS)
            for to in ("a@example.com", "b@example.com")
        ]
    )
    assert isinstance(results[0], ConnectionRefusedError)
    assert mail.delivery_error(results[0]).broken is True
    assert results[1] is mail.NOT_ATTEMPTED


@pytest.mark.parametrize(("pipelining", "delivered"), [("never", 2), ("always", 1)])
def test_it_sends_nothing_more_once_the_hook_stops_the_batch(
    verified_domain, smtp_server, pipelining, delivered
):
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
    assert [rcpts[0] for rcpts, _ in handler.messages] == to[:delivered] + ["after@example.com"]
