"""Mail transport for campaigns: Django's mail API (MAIL_MAILER picks the backend), DKIM for SMTP,
and one place that decides whether a delivery error is worth retrying.

Over SMTP every message is signed for its From: a tenant's verified domain with that domain's own key,
the platform address with the platform's key (when configured); a From the tenant may not use is
refused before it reaches the relay (`signer_for`). The envelope sender is MAIL_RETURN_PATH when set."""

import base64
import binascii
import re
import smtplib
import uuid
from dataclasses import dataclass
from email.header import Header
from email.utils import formatdate
from functools import cache, cached_property, lru_cache

import dkim
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from django.conf import settings
from django.core.mail import BadHeaderError, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.db import connection

from . import senders

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


class SenderRefused(Exception):
    """The current tenant may not send from this message's From (campaigns/senders.py): the message is
    never handed to the relay, signed or not."""


class _OpenSSLDKIM(dkim.DKIM):
    """dkimpy's DKIM signer with its RSA step done by OpenSSL (`cryptography`).

    dkimpy's own RSA is pure Python: about 6 ms per 2048-bit signature against 0.25 ms, and every
    message a tenant sends from its domain is signed. Only `gen_header`'s RSA branch differs from
    dkimpy's (the canonicalisation, hashing and header layout are dkimpy's own functions); the tests
    verify the signatures with dkimpy's `verify`."""

    def __init__(self, message, private_key):
        super().__init__(message, linesep=b"\r\n")
        self._private_key = private_key

    def gen_header(self, fields, include_headers, canon_policy, header_name, pk, standardize=False):
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        digest = self.hasher()
        self.signed_headers = dkim.hash_headers(
            digest,
            canon_policy,
            canon_policy.canonicalize_headers(self.headers),
            include_headers,
            (header_name, b" " + header_value),
            dict(fields),
        )
        signature = self._private_key.sign(
            digest.digest(), padding.PKCS1v15(), asym_utils.Prehashed(hashes.SHA256())
        )
        fields = [
            (b"b", base64.b64encode(signature)) if name == b"b" else (name, value) for name, value in fields
        ]
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep)


@dataclass(frozen=True)
class Signer:
    """Signs messages with one domain's DKIM key (d= that domain, s= its selector)."""

    domain: str
    selector: str
    private_pem: bytes

    @cached_property
    def _private_key(self):
        return serialization.load_pem_private_key(self.private_pem, password=None)

    def sign(self, raw):
        """The DKIM-Signature header line (bytes, CRLF-terminated) for a message's bytes."""
        return _OpenSSLDKIM(raw, self._private_key).sign(
            self.selector.encode(),
            self.domain.encode(),
            self.private_pem,
            include_headers=DKIM_SIGNED_HEADERS,
        )


@cache
def _platform_signer(selector, path, domain):
    with open(path, "rb") as handle:
        return Signer(domain=domain, selector=selector, private_pem=handle.read())


def platform_signer():
    """The platform address's signer when DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE are set, else None."""
    if not (settings.DKIM_SELECTOR and settings.DKIM_PRIVATE_KEY_FILE):
        return None
    domain = senders.address_domain(settings.MAIL_FROM_ADDRESS)
    return _platform_signer(settings.DKIM_SELECTOR, settings.DKIM_PRIVATE_KEY_FILE, domain)


def signer_for(from_header):
    """Who signs a message from `from_header` for the current tenant (None: nobody), or SenderRefused.

    The platform address is signed with the platform's key, if one is configured; an address on a
    domain the tenant has verified with that domain's own key; anything else is refused."""
    if senders.is_platform_address(from_header):
        return platform_signer()
    domain = senders.address_domain(from_header)
    try:
        key = senders.dkim_key(domain) if domain else None
    except senders.UnreadableKey as exc:
        raise SenderRefused(str(exc))
    if key is None:
        raise SenderRefused(
            senders.sender_problem(from_header) or f"'{from_header}' may not be used as sender."
        )
    return Signer(domain=key.domain, selector=key.selector, private_pem=key.private_pem)


CRLF = "\r\n"
ADDRESS_HEADERS = {"from", "to", "reply-to"}
OWN_HEADERS = ADDRESS_HEADERS | {
    "subject",
    "date",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}


PLAIN_ADDRESS_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@lru_cache(maxsize=1024)
def _sanitized(address):
    # A pure function of its input (no tenant state): memoised because From and Reply-To repeat.
    return sanitize_address(address, "utf-8")


def address(value):
    """`sanitize_address(value, "utf-8")`, with a fast path for the plain addresses most recipients have."""
    if PLAIN_ADDRESS_RE.match(value):
        return value
    return _sanitized(value)


def _header(name, value):
    value = str(value)
    if "\n" in value or "\r" in value:
        raise BadHeaderError(f"Header values can't contain newlines (got {value!r} for header {name!r})")
    if value.isascii():
        return f"{name}: {value}"
    encoded = Header(value, "utf-8", header_name=name).encode(linesep=CRLF)
    return f"{name}: {encoded}"


def _qp(text):
    body = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(body).replace(b"\n", b"\r\n")


def message_bytes(message):
    """The wire bytes (CRLF) of a campaign-shaped message: text body plus one HTML alternative.

    Equivalent to `message.message().as_bytes()` for this one shape, at a fraction of the cost (the
    email package's header folding dominated the sender's profile). Any other shape returns None and
    goes through Django's own serialisation.
    """
    alternatives = getattr(message, "alternatives", None) or []
    if (
        message.attachments
        or message.cc
        or message.bcc
        or message.content_subtype != "plain"
        or len(alternatives) != 1
        or alternatives[0][1] != "text/html"
        or (message.encoding or settings.DEFAULT_CHARSET).lower() not in ("utf-8", "utf8")
    ):
        return None
    extra = {name.lower(): (name, value) for name, value in message.extra_headers.items()}
    boundary = f"=_crm_{uuid.uuid4().hex}"
    lines = [
        f"From: {address(extra.get('from', ('', message.from_email))[1])}",
        "To: " + ", ".join(address(value) for value in message.to),
    ]
    if message.reply_to:
        lines.append("Reply-To: " + ", ".join(address(value) for value in message.reply_to))
    lines += [
        _header("Subject", message.subject),
        _header("Date", extra.get("date", ("", formatdate(localtime=True)))[1]),
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    lines += [_header(name, value) for key, (name, value) in extra.items() if key not in OWN_HEADERS]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    part = (
        f'--{boundary}\r\nContent-Type: text/%s; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    return b"".join(
        [
            head,
            (part % "plain").encode(),
            _qp(message.body),
            b"\r\n",
            (part % "html").encode(),
            _qp(alternatives[0][0]),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )


NOT_ATTEMPTED = object()  # send_many's result for a message it never got to (the connection broke)


class StopSending(Exception):
    """Raised by a `before_each` hook: nothing more may leave (the sender lost its claim on the
    batch). The message the hook was called for and all after it are NOT_ATTEMPTED; in a pipeline,
    so is the message whose data was about to follow (the connection is dropped before its end, so
    the server discards it)."""


_LEADING_DOT_RE = re.compile(rb"(?m)^\.")


def _envelope(from_address, recipients):
    lines = [f"MAIL FROM:{smtplib.quoteaddr(from_address)}"]
    lines += [f"RCPT TO:{smtplib.quoteaddr(recipient)}" for recipient in recipients]
    lines.append("DATA")
    return (CRLF.join(lines) + CRLF).encode("ascii")


class CampaignSMTPBackend(SMTPBackend):
    """Django's SMTP backend with fast serialisation of campaign messages, DKIM signing per From
    (`signer_for`) and SMTP PIPELINING (RFC 2920) for batches."""

    # "auto": pipeline when the server offers PIPELINING; "never"; "always" (servers that pipeline
    # without saying so, e.g. the test server).
    pipelining = "auto"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # (schema, From address) -> Signer, None or the SenderRefused: a batch has one From, and the
        # key lookup and decryption happen once per batch, not per message.
        self._signers = {}

    def _signer(self, from_header):
        cache_key = (connection.schema_name, senders.bare_address(from_header).lower())
        if cache_key not in self._signers:
            try:
                self._signers[cache_key] = signer_for(from_header)
            except SenderRefused as exc:
                self._signers[cache_key] = exc
        found = self._signers[cache_key]
        if isinstance(found, SenderRefused):
            raise found
        return found

    def _prepare(self, email_message):
        """(envelope sender, envelope recipients, signed wire bytes)."""
        from_email = address(email_message.from_email)
        headers = {name.lower(): value for name, value in email_message.extra_headers.items()}
        signer = self._signer(headers.get("from", email_message.from_email))
        recipients = [address(value) for value in email_message.recipients()]
        raw = message_bytes(email_message)
        if raw is None:
            raw = email_message.message().as_bytes(linesep=CRLF)
        if signer is not None:
            raw = signer.sign(raw) + raw
        return settings.MAIL_RETURN_PATH or from_email, recipients, raw

    def _send(self, email_message):
        if not email_message.recipients():
            return False
        from_email, recipients, raw = self._prepare(email_message)
        try:
            self.connection.sendmail(from_email, recipients, raw)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True

    def send_many(self, email_messages, before_each=None):
        """Send each message on its own (one failing does not stop the others) over this connection.

        Returns, per message, None (accepted), the exception that refused it, or NOT_ATTEMPTED when
        the connection broke before its turn. `before_each(i)` runs before message i goes out
        (rate pacing, keeping the claim's lease); it may raise StopSending."""
        with self._lock:
            self.open()
            conn = self.connection
            conn.ehlo_or_helo_if_needed()
            prepared = []
            results = [None] * len(email_messages)
            for index, message in enumerate(email_messages):
                try:
                    prepared.append((index, *self._prepare(message)))
                except Exception as exc:  # a message that cannot even be serialised fails alone
                    results[index] = exc
            ascii_only = all(
                raw.isascii() and all(r.isascii() for r in rcpts) for _, _, rcpts, raw in prepared
            )
            pipeline = self.pipelining == "always" or (
                self.pipelining == "auto" and conn.has_extn("pipelining")
            )
            if pipeline and ascii_only and prepared:
                self._send_pipelined(conn, prepared, results, before_each)
            else:
                self._send_one_by_one(conn, prepared, results, before_each)
            return results

    def _send_one_by_one(self, conn, prepared, results, before_each):
        for position, (index, from_email, recipients, raw) in enumerate(prepared):
            if before_each:
                try:
                    before_each(position)
                except StopSending:
                    for rest, *_ in prepared[position:]:
                        results[rest] = NOT_ATTEMPTED
                    return
            try:
                conn.sendmail(from_email, recipients, raw)
            except Exception as exc:
                results[index] = exc
                # SMTPException is an OSError too: only a lost connection ends the batch.
                if isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
                    exc, smtplib.SMTPException
                ):
                    self._broken(prepared[position + 1 :], results)
                    return

    def _send_pipelined(self, conn, prepared, results, before_each):
        """One write per message: its data, its end, and the next message's envelope (RFC 2920)."""
        if before_each:
            try:
                before_each(0)
            except StopSending:
                for index, *_ in prepared:
                    results[index] = NOT_ATTEMPTED
                return
        try:
            conn.send(_envelope(prepared[0][1], prepared[0][2]))
        except OSError as exc:
            results[prepared[0][0]] = exc
            self._broken(prepared[1:], results)
            return
        for position, (index, from_email, recipients, raw) in enumerate(prepared):
            following = prepared[position + 1] if position + 1 < len(prepared) else None
            try:
                mail_reply = conn.getreply()
                rcpt_replies = [conn.getreply() for _ in recipients]
                data_code, data_text = conn.getreply()
                if following and before_each:
                    try:
                        before_each(position + 1)
                    except StopSending:
                        # This message's data has not gone out: drop the connection mid-DATA (no
                        # QUIT, which the server would read as data) and the server discards it.
                        self._abort(prepared[position:], results)
                        return
                next_envelope = _envelope(following[1], following[2]) if following else b""
                if data_code == 354:
                    payload = _LEADING_DOT_RE.sub(b"..", raw)
                    if not payload.endswith(b"\r\n"):
                        payload += b"\r\n"
                    conn.send(payload + b".\r\n" + next_envelope)
                    code, text = conn.getreply()
                    if code != 250:
                        results[index] = smtplib.SMTPDataError(code, text)
                else:
                    conn.send(b"RSET\r\n" + next_envelope)
                    conn.getreply()
                    refused = {
                        r: reply
                        for r, reply in zip(recipients, rcpt_replies, strict=True)
                        if reply[0] not in (250, 251)
                    }
                    if mail_reply[0] != 250:
                        results[index] = smtplib.SMTPSenderRefused(mail_reply[0], mail_reply[1], from_email)
                    elif refused:
                        results[index] = smtplib.SMTPRecipientsRefused(refused)
                    else:
                        results[index] = smtplib.SMTPDataError(data_code, data_text)
            except (OSError, smtplib.SMTPServerDisconnected) as exc:
                results[index] = (
                    exc
                    if isinstance(exc, smtplib.SMTPException)
                    else smtplib.SMTPServerDisconnected(str(exc))
                )
                self._broken(prepared[position + 1 :], results)
                return

    def _abort(self, rest, results):
        for index, *_ in rest:
            results[index] = NOT_ATTEMPTED
        try:
            self.connection.close()
        except Exception:
            pass
        self.connection = None

    def _broken(self, rest, results):
        for index, *_ in rest:
            results[index] = NOT_ATTEMPTED
        try:
            self.close()
        except Exception:
            pass
        self.connection = None


def mail_connection(**overrides):
    """A connection of the configured backend (MAIL_MAILER); SMTP serialises campaign messages
    itself and signs them with DKIM (see the module's docstring).

    `overrides` (host, port, timeout, ...) go to the backend, e.g. to aim a benchmark at a sink.
    """
    backend = None
    if settings.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend":
        backend = "campaigns.mail.CampaignSMTPBackend"
    return get_connection(backend=backend, fail_silently=False, **overrides)


@dataclass(frozen=True)
class DeliveryError:
    permanent: bool
    reason: str
    # The connection is unusable after this error: reconnect before the next message.
    broken: bool = False


def delivery_error(exc):
    """Classify an exception raised while handing one message to the backend."""
    if isinstance(exc, SenderRefused):
        # The tenant can fix it (verify the domain again) while the retries wait.
        return DeliveryError(permanent=False, reason=f"sender refused: {exc}")
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
    if isinstance(exc, AnymailRecipientsRefused):
        return DeliveryError(permanent=True, reason=f"recipient refused by the ESP: {exc}")
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        transient = status is None or status >= 500 or status == 429
        return DeliveryError(permanent=not transient, reason=f"ESP error {status}: {_describe(exc)}")
    return DeliveryError(permanent=True, reason=f"{type(exc).__name__}: {_describe(exc)}")


def _describe(exc):
    try:
        return str(exc)[:500]
    except Exception:  # an exception whose __str__ fails (e.g. an ESP error without its response)
        return repr(exc.args)[:500]


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
