"""ESP webhooks through django-anymail's signals (anymail's documented interface).

- `tracking`: delivery events. Anymail has already authenticated the webhook (WEBHOOK_SECRET basic
  auth, plus the ESP's signature where it has one) and normalised the ESP's payload; this maps the
  event to our outcome and finds the recipient by the metadata the sender attached, or by Message-ID.
- `inbound`: mail to MAIL_UNSUBSCRIBE_MAILTO, the `mailto:` of our List-Unsubscribe header, whose
  subject carries the recipient's signed unsubscribe token: it unsubscribes as the one-click POST does.
"""

import logging
import re

from anymail.signals import EventType, RejectReason, inbound, tracking
from django.conf import settings
from django.core import checks
from django.db import connection
from django.dispatch import receiver
from django_tenants.utils import schema_context

from campaigns.tokens import TokenKind, read_token
from tenancy.models import Tenant

from . import delivery, preferences, selectors

logger = logging.getLogger(__name__)

# ESP-specific bounce types that are temporary although anymail files them as "bounced".
SOFT_BOUNCE_TYPES = {"SoftBounce", "Transient", "DnsError"}


def outcome_for(event):
    """Our delivery outcome for an anymail tracking event, or None for events we leave alone."""
    kind = event.event_type
    if kind == EventType.DELIVERED:
        return delivery.DELIVERED
    if kind == EventType.BOUNCED:
        esp_type = event.esp_event.get("Type") if isinstance(event.esp_event, dict) else None
        return delivery.SOFT_BOUNCED if esp_type in SOFT_BOUNCE_TYPES else delivery.BOUNCED
    if kind == EventType.COMPLAINED:
        return delivery.COMPLAINED
    if kind == EventType.REJECTED:
        # The ESP refused to send because the address bounced or complained before: same as that.
        if event.reject_reason == RejectReason.BOUNCED:
            return delivery.BOUNCED
        if event.reject_reason == RejectReason.SPAM:
            return delivery.COMPLAINED
        return delivery.REJECTED
    if kind == EventType.UNSUBSCRIBED:
        return delivery.UNSUBSCRIBED
    return None  # queued, sent, deferred, opened, clicked (we track those ourselves), ...


def _recipient_id(metadata):
    # The sender attaches {"schema", "campaign", "recipient"} (campaigns.messages); ESPs echo it back,
    # often with every value turned into a string.
    try:
        return int(metadata.get("recipient"))
    except (TypeError, ValueError):
        return None


def webhook_secret_configured():
    return bool((getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET"))


@receiver(tracking, dispatch_uid="tracking.webhooks.on_tracking_event")
def on_tracking_event(sender, event, esp_name, **kwargs):
    outcome = outcome_for(event)
    if outcome is None:
        return
    if not webhook_secret_configured():
        # anymail only warns when WEBHOOK_SECRET is missing and accepts anyone's post; a forged
        # "bounced" would suppress a real customer, so unauthenticated events change nothing here.
        logger.warning(
            "%s %s event ignored: set ANYMAIL_WEBHOOK_SECRET to accept ESP webhooks", esp_name, outcome
        )
        return
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    schema = metadata.get("schema")
    current = connection.schema_name
    arguments = {
        "outcome": outcome,
        "email": event.recipient,
        "message_id": event.message_id,
        # A recipient id means something only in the schema it was issued in.
        "recipient_id": _recipient_id(metadata) if schema in (None, current) or current == "public" else None,
        "occurred_at": event.timestamp,
        "detail": event.description or event.mta_response or "",
    }
    if current != "public":
        delivery.delivery_event_apply(**arguments)
        return
    # An ESP account shared by all tenants may post to the public host: the sender's metadata names
    # the tenant's schema.
    if not schema or not Tenant.objects.serving().filter(schema_name=schema).exists():
        logger.warning("%s %s event for an unknown tenant ignored", esp_name, outcome)
        return
    with schema_context(schema):
        delivery.delivery_event_apply(**arguments)


# "unsubscribe-<token>" (campaigns.messages), wherever a mail client left it in the subject ("Re: ...").
MAILTO_SUBJECT = re.compile(r"unsubscribe-([0-9A-Za-z.]+~[0-9A-Za-z_-]+)")


@receiver(inbound, dispatch_uid="tracking.webhooks.on_inbound_message")
def on_inbound_message(sender, event, esp_name, **kwargs):
    """A mailto unsubscribe. The signed token is the proof (as for the one-click POST): whoever can
    read the message may unsubscribe its recipient, and a forged subject names nobody."""
    message = event.message
    match = MAILTO_SUBJECT.search((message.subject if message is not None else None) or "")
    if match is None:
        logger.info("%s inbound message without an unsubscribe token ignored", esp_name)
        return
    token = match.group(1)
    current = connection.schema_name
    if current != "public":
        schemas = [current]
    else:  # one address for every tenant: the tenant whose key signed the token
        # Deactivated tenants too: their recipients can still unsubscribe (PRODUCT.md).
        schemas = (
            Tenant.objects.filter(is_template=False)
            .exclude(schema_name="public")
            .values_list("schema_name", flat=True)
        )
    for schema in schemas:
        if read_token(TokenKind.UNSUBSCRIBE, token, schema=schema) is None:
            continue
        with schema_context(schema):
            recipient = selectors.recipient_for_token(token=token)
            if recipient is not None:
                preferences.recipient_unsubscribe(recipient=recipient, source="mailto")
        return
    logger.warning("%s inbound unsubscribe with a token of no tenant ignored", esp_name)


@checks.register(checks.Tags.security)
def check_webhook_secret(app_configs=None, **kwargs):
    """An ESP mailer without a webhook secret gets no delivery events (see on_tracking_event)."""
    if settings.EMAIL_BACKEND.startswith("anymail.") and not webhook_secret_configured():
        return [
            checks.Warning(
                "ESP delivery webhooks are ignored until ANYMAIL_WEBHOOK_SECRET is set.",
                hint="Set ANYMAIL_WEBHOOK_SECRET=user:password and give the ESP that basic-auth URL.",
                id="tracking.W001",
            )
        ]
    return []
