"""Mail transport for campaigns: Django's mail API (MAIL_MAILER picks the backend), DKIM for SMTP,
and one place that decides whether a delivery error is worth retrying."""

import smtplib
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address

# Headers DKIM signs: the usual ones plus RFC 8058's two, so nobody can strip or alter the one-click
# unsubscribe in transit without breaking the signature.
DKIM_SIGNED_HEADERS = [
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
]


@cache
def _dkim_key(path):
    with open(path, "rb") as handle:
        return handle.read()


def dkim_enabled():
    return bool(settings.DKIM_SELECTOR and settings.DKIM_PRIVATE_KEY_FILE)


def dkim_sign(raw, *, domain):
    """The DKIM-Signature header line (bytes, CRLF-terminated) for a message's bytes."""
    import dkim

    return dkim.sign(
        raw,
        settings.DKIM_SELECTOR.encode(),
        domain.encode(),
        _dkim_key(settings.DKIM_PRIVATE_KEY_FILE),
        include_headers=DKIM_SIGNED_HEADERS,
    )


class DKIMEmailBackend(SMTPBackend):
    """Django's SMTP backend, signing every message with the sending domain's DKIM key."""

    def _send(self, email_message):
        if not email_message.recipients():
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        from_email = sanitize_address(email_message.from_email, encoding)
        recipients = [sanitize_address(addr, encoding) for addr in email_message.recipients()]
        raw = email_message.message().as_bytes(linesep="\r\n")
        domain = from_email.rpartition("@")[2].strip(">").strip()
        raw = dkim_sign(raw, domain=domain) + raw
        try:
            self.connection.sendmail(from_email, recipients, raw)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True


def mail_connection(**overrides):
    """A connection of the configured backend (MAIL_MAILER); SMTP is DKIM-signed when a key is set.

    `overrides` (host, port, timeout, ...) go to the backend, e.g. to aim a benchmark at a sink.
    """
    backend = None
    if settings.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend" and dkim_enabled():
        backend = "campaigns.mail.DKIMEmailBackend"
    return get_connection(backend=backend, fail_silently=False, **overrides)


@dataclass(frozen=True)
class DeliveryError:
    permanent: bool
    reason: str
    # The connection is unusable after this error: reconnect before the next message.
    broken: bool = False


def delivery_error(exc):
    """Classify an exception raised while handing one message to the backend."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()] or [550]
        detail = "; ".join(f"{code} {_text(msg)}" for code, msg in exc.recipients.values())
        return DeliveryError(permanent=min(codes) >= 500, reason=f"recipient refused: {detail}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError(permanent=False, reason=f"SMTP server disconnected: {exc}", broken=True)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # Our configuration, not the recipient: never burn the recipient on it.
        return DeliveryError(
            permanent=False, reason=f"SMTP authentication failed: {exc.smtp_code}", broken=True
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        reason = f"{code} {_text(exc.smtp_error)}"
        # 421 means the server is closing the connection.
        return DeliveryError(permanent=500 <= code < 600, reason=reason, broken=code == 421)
    if isinstance(exc, smtplib.SMTPException | OSError):
        return DeliveryError(permanent=False, reason=f"{type(exc).__name__}: {exc}", broken=True)
    try:
        from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
    except ImportError:  # pragma: no cover - anymail is a dependency
        AnymailAPIError = AnymailRecipientsRefused = ()
    if AnymailRecipientsRefused and isinstance(exc, AnymailRecipientsRefused):
        return DeliveryError(permanent=True, reason=f"recipient refused by the ESP: {exc}")
    if AnymailAPIError and isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        transient = status is None or status >= 500 or status == 429
        return DeliveryError(permanent=not transient, reason=f"ESP error {status}: {str(exc)[:500]}")
    return DeliveryError(permanent=True, reason=f"{type(exc).__name__}: {str(exc)[:500]}")


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
