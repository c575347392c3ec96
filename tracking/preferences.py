"""Unsubscribes (a campaign's link, one-click, mailto, the ESP's) and the preference centre."""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from campaigns.models import CampaignRecipient
from customers.models import Customer
from customers.services import customer_resubscribe, customer_unsubscribe, customer_update, interaction_add

from .models import CampaignStats


@transaction.atomic
def recipient_unsubscribe(*, recipient, source="link"):
    """Unsubscribe a recipient's customer from marketing through this campaign's link.

    Idempotent: a second call changes nothing, logs nothing and emits nothing.
    Returns True when something changed.
    """
    now = timezone.now()
    first_time = CampaignRecipient.objects.filter(pk=recipient.pk, unsubscribed_at__isnull=True).update(
        unsubscribed_at=now
    )
    if first_time:
        _stats_add(campaign_id=recipient.campaign_id, unsubscribes=1)
    changed = customer_unsubscribe(
        customer_id=recipient.customer_id,
        now=now,
        source=source,
        data={"campaign_id": recipient.campaign_id, "recipient_id": recipient.pk},
    )
    return bool(first_time) or changed


def _stats_add(*, campaign_id, **deltas):
    stats, _ = CampaignStats.objects.get_or_create(campaign_id=campaign_id)
    CampaignStats.objects.filter(pk=stats.pk).update(
        **{name: F(name) + value for name, value in deltas.items()}, updated_at=timezone.now()
    )


@transaction.atomic
def customer_preferences_update(*, customer, email_marketing, email_transactional, source="preferences"):
    """Set a customer's own email choices (the preference centre). Returns the names that changed.

    Turning marketing off is an unsubscribe (`customer.unsubscribed`); turning it on again or changing
    transactional email is a customer update (`customer.updated`, through customers' own service).
    """
    now = timezone.now()
    changed = []
    if not email_marketing and customer_unsubscribe(customer_id=customer.pk, now=now, source=source):
        changed += ["email_marketing", "unsubscribed_at"]
    customer = Customer.objects.get(pk=customer.pk)
    updates = {}
    if email_transactional != customer.email_transactional:
        updates["email_transactional"] = email_transactional
    if email_marketing and customer.unsubscribed_at is not None:
        # The person themselves: the one resubscribe that needs no one else's reason.
        changed += customer_resubscribe(
            customer=customer,
            source=source,
            reason="The customer turned marketing email on again.",
            also=updates,
        )
        customer = Customer.objects.get(pk=customer.pk)
    else:
        if email_marketing and not customer.email_marketing:
            updates["email_marketing"] = True  # a first opt-in
        if updates:
            customer, updated = customer_update(customer=customer, data=updates, source=source)
            changed += updated
    resubscribed = email_marketing and "unsubscribed_at" in changed
    if (updates or resubscribed) and changed:
        interaction_add(
            customer=customer,
            kind="preferences",
            body="Email preferences: marketing {}, transactional {}.".format(
                "on" if email_marketing else "off", "on" if email_transactional else "off"
            ),
            data={"source": source, "changed": sorted(set(changed))},
            occurred_at=now,
        )
    return sorted(set(changed))
