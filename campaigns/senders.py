"""Sender identity: the domains a tenant may send from, the DNS proof of each, and its DKIM key.

A tenant adds a domain and publishes two TXT records (`sender_domain_records`):
- `_crm-verification.<domain>` = `crm-verify=<token>`: proves control of the domain's DNS. The token is
  this tenant's own, so another tenant that adds the same domain never verifies it;
- `<selector>._domainkey.<domain>` = `v=DKIM1; k=rsa; p=<public key>`: the key receivers check our
  signatures with. Each domain of each tenant has its own key pair and selector.
`sender_domain_verify` looks both up through core.dns; the domain is verified while both are there.

The rule (PRODUCT.md "Sender identity", `sender_problem`): a From address is allowed when it is exactly
MAIL_FROM_ADDRESS or on a domain this tenant has verified. Exact domains only: a verified `acme.com`
does not cover `news.acme.com`. A sub-domain can be delegated to someone else (an agency, a hosting
customer), so control of the parent proves nothing about it; and DKIM's `d=` names the exact domain
whose key signs, so each sending domain carries its own proof and its own key.

The private key is encrypted at rest with a key derived from DKIM_KEY_SECRET (Fernet) and is never
shown: only the mail transport decrypts it (`dkim_key`), to sign.
"""

import base64
import logging
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.encoding import punycode

from core import dns
from tenancy.services import normalize_domain

from . import selectors
from .models import Campaign, SenderDomain

logger = logging.getLogger(__name__)

VERIFICATION_PREFIX = "_crm-verification"
VERIFICATION_VALUE_PREFIX = "crm-verify="
DKIM_KEY_BITS = 2048
PURPOSES = ("verification", "dkim")
# What a record check can say: not checked yet, published, no TXT record at the name, TXT records but
# none with our value, or no answer from the DNS (which proves nothing either way).
UNCHECKED, FOUND, MISSING, MISMATCH, ERROR = "unchecked", "found", "missing", "mismatch", "error"
RECORD_DETAILS = {
    UNCHECKED: "Not checked yet.",
    FOUND: "Published.",
    MISSING: "No TXT record at this name yet.",
    MISMATCH: "TXT records are there, but none with this value.",
}
# Campaigns whose sender is still going to be used: a domain they send from cannot be deleted.
LIVE_CAMPAIGN_STATUSES = ("scheduled", "sending", "paused")


class UnreadableKey(Exception):
    """A stored key that the current DKIM_KEY_SECRET cannot decrypt."""


class SenderDomainInUse(Exception):
    """The domain is the sender of a live campaign or the tenant's default (the API answers 409)."""


# --- the rule ------------------------------------------------------------------------------------


def domain_normalize(value):
    """Lower-case IDNA (xn--) form of a domain name; raises ValidationError naming `domain`."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({"domain": ["Give a domain name such as example.com."]})
    text = value.strip().rstrip(".")
    if "@" in text or "/" in text or ":" in text:
        raise ValidationError({"domain": [f"'{value}' is not a domain name: give only the part after @."]})
    try:
        host = punycode(text.lower())
    except (UnicodeError, ValueError):
        raise ValidationError({"domain": [f"'{value}' is not a valid domain name."]})
    try:
        host = normalize_domain(host)
    except ValidationError:
        raise ValidationError({"domain": [f"'{value}' is not a valid domain name."]})
    labels = host.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        raise ValidationError({"domain": [f"'{value}' is not a domain name such as example.com."]})
    return host


def bare_address(address):
    """`a@b` of `Name <a@b>` or `a@b`, stripped."""
    address = (address or "").strip()
    if address.endswith(">") and "<" in address:
        address = address[address.rindex("<") + 1 : -1].strip()
    return address


def is_platform_address(address):
    """Exactly the platform's MAIL_FROM_ADDRESS (any case, with or without a display name)."""
    return bare_address(address).lower() == settings.MAIL_FROM_ADDRESS.strip().lower()


def address_domain(address):
    """The IDNA domain of an address (`Name <a@b>` or `a@b`), or None when it has none."""
    local, at, domain = bare_address(address).rpartition("@")
    if not at or not local:
        return None
    try:
        return domain_normalize(domain)
    except ValidationError:
        return None


def sender_problem(from_email):
    """Why the current tenant may not send from `from_email`, or None when it may: the platform's
    MAIL_FROM_ADDRESS, or an address on a domain this tenant has verified."""
    if is_platform_address(from_email):
        return None
    address = bare_address(from_email)
    domain = address_domain(address)
    if domain is None:
        return f"'{address}' is not a valid email address."
    row = None
    if connection.schema_name != "public":  # the platform itself has no sender domains
        row = SenderDomain.objects.filter(domain=domain).values("status", "last_checked_at").first()
    if row is None:
        return (
            f"'{address}' is not on a verified sender domain of this account: add {domain} under "
            f"Sender domains, publish its DNS records and verify it (or send from {settings.MAIL_FROM_ADDRESS})."
        )
    if row["status"] == "verified":
        return None
    if row["status"] == "failed":
        when = f" at {row['last_checked_at']:%Y-%m-%d %H:%M} UTC" if row["last_checked_at"] else ""
        return (
            f"The sender domain {domain} failed its last DNS check{when}: publish its DNS records "
            "again and verify it under Sender domains."
        )
    return (
        f"The sender domain {domain} is not verified yet: publish its DNS records and verify it under "
        "Sender domains."
    )


def sender_check(*, from_email, field="from_email"):
    """Raise ValidationError({field: [why]}) unless the current tenant may send from `from_email`."""
    problem = sender_problem(from_email)
    if problem:
        raise ValidationError({field: [problem]})


def sender_or_platform(from_email):
    """`from_email` when the tenant may send from it, else the platform address (for mail that must
    go out whatever the sender setting says, e.g. order confirmations)."""
    if not from_email:
        return settings.MAIL_FROM_ADDRESS
    problem = sender_problem(from_email)
    if problem is None:
        return from_email
    logger.warning(
        "%s: sending from %s instead of %s: %s",
        connection.schema_name,
        settings.MAIL_FROM_ADDRESS,
        from_email,
        problem,
    )
    return settings.MAIL_FROM_ADDRESS


# --- keys ------------------------------------------------------------------------------------------


def _fernet():
    # A key of its own, derived from the setting: the same secret never serves two purposes.
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"crm.sender-domains.dkim-private-key"
    ).derive(settings.DKIM_KEY_SECRET.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _key_pair():
    """(private key PEM encrypted for storage, public key as DNS publishes it: base64 DER)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=DKIM_KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _fernet().encrypt(pem).decode("ascii"), base64.b64encode(public).decode("ascii")


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_pem: bytes


def dkim_key(domain):
    """The current tenant's key for `domain` when the domain is verified, else None."""
    if connection.schema_name == "public":
        return None
    row = (
        SenderDomain.objects.filter(domain=domain, status="verified")
        .values("dkim_selector", "dkim_private_key_encrypted")
        .first()
    )
    if row is None:
        return None
    try:
        pem = _fernet().decrypt(row["dkim_private_key_encrypted"].encode("ascii"))
    except InvalidToken:
        raise UnreadableKey(
            f"The DKIM key of {domain} cannot be decrypted: DKIM_KEY_SECRET changed since it was made."
        )
    return DkimKey(domain=domain, selector=row["dkim_selector"], private_pem=pem)


# --- records and checks --------------------------------------------------------------------------


def _expected(sender_domain):
    return {
        "verification": (
            f"{VERIFICATION_PREFIX}.{sender_domain.domain}",
            f"{VERIFICATION_VALUE_PREFIX}{sender_domain.verification_token}",
        ),
        "dkim": (
            f"{sender_domain.dkim_selector}._domainkey.{sender_domain.domain}",
            f"v=DKIM1; k=rsa; p={sender_domain.dkim_public_key}",
        ),
    }


def sender_domain_records(*, sender_domain):
    """The records to publish and what the last check found of each:
    [{"purpose", "name", "type", "value", "status", "found", "detail"}]."""
    checked = sender_domain.last_check or {}
    records = []
    for purpose, (name, value) in _expected(sender_domain).items():
        result = checked.get(purpose) or {}
        status = result.get("status", UNCHECKED)
        records.append(
            {
                "purpose": purpose,
                "name": name,
                "type": "TXT",
                "value": value,
                "status": status,
                "found": result.get("found", []),
                "detail": result.get("detail") or RECORD_DETAILS.get(status, ""),
            }
        )
    return records


def _dkim_tags(text):
    tags = {}
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def _matches(purpose, published, expected):
    if purpose == "verification":
        return published.strip() == expected
    tags, wanted = _dkim_tags(published), _dkim_tags(expected)
    return tags.get("p") == wanted["p"] and tags.get("k", "rsa").lower() == "rsa"


def _check(purpose, name, expected):
    lookup = dns.txt_lookup(name)
    if lookup.outcome == dns.ERROR:
        return {"status": ERROR, "found": [], "detail": lookup.error}
    found = lookup.records
    if any(_matches(purpose, record, expected) for record in found):
        status = FOUND
    else:
        status = MISMATCH if found else MISSING
    # What was found is kept short: another party's records are theirs to read, not ours to store.
    return {
        "status": status,
        "found": [record[:500] for record in found[:10]],
        "detail": RECORD_DETAILS[status],
    }


# --- services --------------------------------------------------------------------------------------


def sender_domain_create(*, domain):
    """Add a domain (pending) with a fresh verification token and DKIM key pair."""
    host = domain_normalize(domain)
    if SenderDomain.objects.filter(domain=host).exists():
        raise ValidationError({"domain": [f"{host} is already a sender domain of this account."]})
    private_encrypted, public = _key_pair()
    try:
        with transaction.atomic():
            return SenderDomain.objects.create(
                domain=host,
                verification_token=secrets.token_urlsafe(24),
                # Random per row: two tenants that add one domain never publish at the same name.
                dkim_selector=f"crm{secrets.token_hex(4)}",
                dkim_public_key=public,
                dkim_private_key_encrypted=private_encrypted,
            )
    except IntegrityError:  # added by a parallel request since the check above
        raise ValidationError({"domain": [f"{host} is already a sender domain of this account."]})


def sender_domain_verify(*, sender_domain):
    """Look up both records now and record what was found.

    Both found: verified (since the first success of this streak). Either definitely absent or
    different: failed, and its addresses are refused until it verifies again. No answer from the DNS
    (timeout, SERVFAIL) proves nothing: the status stays as it was, the error is shown."""
    results = {
        purpose: _check(purpose, name, value) for purpose, (name, value) in _expected(sender_domain).items()
    }
    statuses = {result["status"] for result in results.values()}
    now = timezone.now()
    if statuses == {FOUND}:
        status = "verified"
        verified_at = sender_domain.verified_at if sender_domain.status == "verified" else now
    elif statuses & {MISSING, MISMATCH}:
        status, verified_at = "failed", sender_domain.verified_at
    else:
        status, verified_at = sender_domain.status, sender_domain.verified_at
    SenderDomain.objects.filter(pk=sender_domain.pk).update(
        status=status, verified_at=verified_at, last_checked_at=now, last_check=results
    )
    sender_domain.status, sender_domain.verified_at = status, verified_at
    sender_domain.last_checked_at, sender_domain.last_check = now, results
    return sender_domain


def sender_domain_in_use(*, sender_domain):
    """What still sends from the domain (the tenant's default sender, a live campaign), or None."""
    tenant = getattr(connection, "tenant", None)
    if address_domain(getattr(tenant, "from_email", "")) == sender_domain.domain:
        return (
            f"{sender_domain.domain} is the account's default sender ({tenant.from_email}): "
            "change it in Settings first."
        )
    for campaign in Campaign.objects.filter(status__in=LIVE_CAMPAIGN_STATUSES):
        sender = selectors.campaign_sender(campaign=campaign)["from_email"]
        if address_domain(sender) == sender_domain.domain:
            return (
                f"The campaign “{campaign.name}” ({campaign.get_status_display().lower()}) sends from "
                f"{sender_domain.domain}: cancel it or let it finish first."
            )
    return None


def sender_domain_delete(*, sender_domain):
    """Remove a domain and its key; refused (SenderDomainInUse) while something sends from it."""
    problem = sender_domain_in_use(sender_domain=sender_domain)
    if problem:
        raise SenderDomainInUse(problem)
    sender_domain.delete()
