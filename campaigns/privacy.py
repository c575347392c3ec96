"""What campaigns keep of a customer who is erased (GDPR), and suppressions that outlive an erasure.

customers.hooks calls `customer_erased` inside the erase transaction and `erased_address_returned`
inside the transaction that creates a customer with an address erased before (see customers.privacy).
"""

from django.db import connection
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from customers import hooks
from customers.models import Customer, ErasedAddress, Order
from customers.privacy import address_hash, redact
from events.models import TransactionalEmail

from .models import ERASED_EMAIL_DOMAIN, CampaignRecipient, Suppression

ERASED_REASON = "Not sent: the customer's personal data was erased."


def customer_erased(*, customer_id, email=None, external_id=None, **_):
    """The customer's recipients keep their history under a placeholder address, their unsent ones are
    cancelled, SMTP replies lose the address, a suppression keeps only the address's hash, and the
    transactional email ledger (public schema) loses any address its reasons quoted."""
    recipients = CampaignRecipient.objects.filter(customer_id=customer_id)
    # Not claimed yet, so no worker holds them: they will never be sent (one claimed right now is
    # left to the sender, which checks consent again before sending).
    recipients.filter(status="pending").update(status="cancelled", lease_until=None, error=ERASED_REASON)
    for pk, error in recipients.exclude(error="").values_list("pk", "error"):
        cleaned = redact(error, email)
        if cleaned != error:
            CampaignRecipient.objects.filter(pk=pk).update(error=cleaned)
    recipients.update(
        email=Concat(Value("erased-"), Cast("id", CharField()), Value(f"@{ERASED_EMAIL_DOMAIN}"))
    )
    if email:
        Suppression.objects.filter(email=email).update(email=None, email_hash=address_hash(email), detail="")
    _transactional_ledger_scrub(customer_id=customer_id, email=email)


def _transactional_ledger_scrub(*, customer_id, email):
    order_ids = list(Order.objects.filter(customer_id=customer_id).values_list("pk", flat=True))
    if not order_ids:
        return
    rows = TransactionalEmail.objects.filter(tenant=connection.schema_name, order_id__in=order_ids).exclude(
        reason=""
    )
    for pk, reason in rows.values_list("pk", "reason"):
        cleaned = redact(reason, email)
        if cleaned != reason:
            TransactionalEmail.objects.filter(pk=pk).update(reason=cleaned)


def erased_address_returned(*, email, **_):
    """A new customer has an address whose suppression outlived its erasure: it holds it again."""
    Suppression.objects.filter(email__isnull=True, email_hash=address_hash(email)).update(
        email=email, email_hash=None
    )


def suppression_add(*, email, reason, detail=""):
    """Suppress an address for all future marketing; True when it was not suppressed before.

    An address that was erased (on the erased list, and no customer has it again) is suppressed by
    its keyed hash only, without the detail: a bounce arriving after the erasure brings nothing back.
    """
    email = (email or "").strip().lower()
    hashed = address_hash(email)
    erased = (
        ErasedAddress.objects.filter(email_hash=hashed).exists()
        and not Customer.objects.filter(email=email).exists()
    )
    if erased:
        _, created = Suppression.objects.get_or_create(
            email_hash=hashed, defaults={"email": None, "reason": reason, "created_at": timezone.now()}
        )
        return created
    _, created = Suppression.objects.get_or_create(
        email=email, defaults={"reason": reason, "detail": detail, "created_at": timezone.now()}
    )
    return created


def register():
    """Called from CampaignsConfig.ready()."""
    for registry, hook in (
        (hooks.customer_erased, customer_erased),
        (hooks.erased_address_returned, erased_address_returned),
    ):
        if hook not in registry:
            registry.append(hook)
