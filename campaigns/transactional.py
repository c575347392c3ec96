"""Transactional email: the order confirmation and the shipping notice, once per order and kind.

Flow: customers' services call our hooks after an order change commits. A hook *requests* an
email by inserting its (tenant, order, kind) row with INSERT ... ON CONFLICT DO NOTHING: that unique
key, not a check-then-insert, is what makes a webshop that repeats itself get one email. Only the
request that inserted the row enqueues the send task. The task claims the row with a conditional
update (pending -> sending, with a lease), renders the tenant's transactional template of that
kind, sends, and records the outcome on the row and as a `transactional_email` interaction. A
customer with `email_transactional` off gets nothing, and the interaction says why; a deactivated
tenant sends nothing more (its requests end `skipped`). A sweeper re-enqueues the serving tenants'
requests whose task never ran (task broker down) or whose worker died (lease expired).
"""

import logging
import re
from datetime import timedelta
from email.utils import formataddr

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from core.backoff import exponential_backoff
from customers import hooks
from customers.models import Order
from customers.privacy import redact
from customers.services import interaction_add
from events.models import TransactionalEmail
from tenancy.models import Tenant
from tenancy.services import PROVISION_HOOKS

from . import senders, tokens
from .mail import delivery_error, mail_connection
from .messages import sending_domain
from .models import EmailTemplate
from .product_cards import cards_refresh_text
from .rendering import (
    customer_context,
    order_context,
    render_message,
    sample_context,
    sample_order_context,
)

logger = logging.getLogger(__name__)

CONFIRMATION = "order_confirmation"
SHIPPED = "order_shipped"
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 8
# A transient delivery error is retried after 30 s, 1 min, 2 min ... at most an hour.
RETRY_BACKOFF_BASE_SECONDS = 30
RETRY_BACKOFF_MAX_SECONDS = 3600
# A request whose task has not claimed it by then is enqueued again (its task was lost).
STUCK_AFTER = timedelta(minutes=2)

DEFAULT_TEMPLATES = {
    CONFIRMATION: {
        "name": "Order confirmation",
        "subject": "Your order {{ order.number }} is confirmed",
        "html_body": (
            '<p>Hi {{ customer.first_name|default:"there" }},</p>\n'
            "<p>Thank you for your order <strong>{{ order.number }}</strong>. We have received it and will "
            "let you know as soon as it ships.</p>\n"
            '<table cellpadding="4" cellspacing="0" border="0">\n'
            '<tr><th align="left">Item</th><th align="right">Quantity</th><th align="right">Price</th></tr>\n'
            "{% for item in order.items %}"
            '<tr><td>{{ item.name|default:item.sku }}</td><td align="right">{{ item.quantity }}</td>'
            '<td align="right">{{ item.total }} {{ order.currency }}</td></tr>\n'
            "{% endfor %}"
            "</table>\n"
            "<p>Total: <strong>{{ order.total }} {{ order.currency }}</strong></p>\n"
        ),
        "text_body": (
            'Hi {{ customer.first_name|default:"there" }},\n\n'
            "Thank you for your order {{ order.number }}. We have received it and will let you know as soon "
            "as it ships.\n\n"
            "{% for item in order.items %}- {{ item.quantity }} x {{ item.name|default:item.sku }}: "
            "{{ item.total }} {{ order.currency }}\n{% endfor %}\n"
            "Total: {{ order.total }} {{ order.currency }}\n"
        ),
    },
    SHIPPED: {
        "name": "Order shipped",
        "subject": "Your order {{ order.number }} is on its way",
        "html_body": (
            '<p>Hi {{ customer.first_name|default:"there" }},</p>\n'
            "<p>Good news: your order <strong>{{ order.number }}</strong> has shipped.</p>\n"
            "<ul>\n{% for item in order.items %}<li>{{ item.quantity }} x {{ item.name|default:item.sku }}</li>\n"
            "{% endfor %}</ul>\n"
        ),
        "text_body": (
            'Hi {{ customer.first_name|default:"there" }},\n\n'
            "Good news: your order {{ order.number }} has shipped.\n\n"
            "{% for item in order.items %}- {{ item.quantity }} x {{ item.name|default:item.sku }}\n{% endfor %}"
        ),
    },
}
TITLES = {CONFIRMATION: "Order confirmation", SHIPPED: "Shipping notice"}
# A link whose target rendered empty: in an order email, a marketing-only variable
# (`{{ unsubscribe_url }}`, `{{ web_version_url }}`) written into the template by hand.
EMPTY_LINK_RE = re.compile(
    r"""<a\b[^>]*?\bhref\s*=\s*(["'])\s*\1[^>]*>(.*?)</a\s*>""", re.IGNORECASE | re.DOTALL
)


def register():
    """Called from CampaignsConfig.ready(): plug transactional email into customers.hooks and provisioning."""
    for registry, hook in (
        (hooks.order_recorded, _on_order_recorded),
        (hooks.order_status_changed, _on_order_status_changed),
        (PROVISION_HOOKS, transactional_templates_ensure),
    ):
        if hook not in registry:
            registry.append(hook)


# --- hooks (customers calls them after the order change committed) -------------------------------


def _on_order_recorded(*, order_id, created):
    if not created:
        return  # a repeated order: its emails were requested when it was first recorded

    order = Order.objects.filter(pk=order_id).values("status", "placed_at").first()
    if order is None:
        return
    # A historic import is no news to the customer: only recent orders are confirmed.
    if order["placed_at"] < timezone.now() - timedelta(hours=settings.TRANSACTIONAL_EMAIL_MAX_AGE_HOURS):
        return
    if order["status"] in ("cancelled", "refunded"):
        return
    transactional_email_request(order_id=order_id, key=CONFIRMATION)
    if order["status"] == "shipped":  # recorded already shipped: it became shipped just now
        transactional_email_request(order_id=order_id, key=SHIPPED)


def _on_order_status_changed(*, order_id, old, new):
    if new == "shipped" and old != "shipped":
        transactional_email_request(order_id=order_id, key=SHIPPED)


# --- services -------------------------------------------------------------------------------------


def transactional_email_request(*, order_id, key):
    """Request the `key` email of an order; returns the ledger row id when this call created the
    request (and enqueued the send), None when it had been requested before."""

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO public.{TransactionalEmail._meta.db_table} "
            "(tenant, order_id, kind, status, message_id, reason, attempts, created_at) "
            "VALUES (%s, %s, %s, 'pending', '', '', 0, %s) "
            "ON CONFLICT (tenant, order_id, kind) DO NOTHING RETURNING id",
            [connection.schema_name, order_id, key, timezone.now()],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    email_id, schema = row[0], connection.schema_name
    transaction.on_commit(lambda: _enqueue(email_id, schema))
    return email_id


def _enqueue(email_id, schema):
    try:
        send_transactional_email.apply_async(
            kwargs={"email_id": email_id}, headers={"_schema_name": schema}, retry=False
        )
    except Exception:  # the task broker is down: the sweeper enqueues it again
        logger.warning("could not enqueue transactional email %s; the sweeper will", email_id, exc_info=True)


def transactional_template(*, key):
    """The tenant's transactional template for `key`, created from the default when missing."""

    template, _ = EmailTemplate.objects.get_or_create(
        kind="transactional", key=key, defaults=DEFAULT_TEMPLATES[key]
    )
    return template


def transactional_templates_ensure(tenant=None):
    """A default transactional template for each key (idempotent); a PROVISION_HOOKS entry."""
    return [transactional_template(key=key) for key in DEFAULT_TEMPLATES]


def transactional_email_claim(*, email_id):
    """Take a request for sending (pending, or sending with an expired lease). True when this call won it."""

    now = timezone.now()
    claimed = (
        TransactionalEmail.objects.filter(pk=email_id, tenant=connection.schema_name)
        .filter(Q(status="pending") | Q(status="sending", lease_until__lt=now))
        .update(status="sending", lease_until=now + LEASE, attempts=F("attempts") + 1)
    )
    return claimed == 1


def transactional_email_send(*, email_id):
    """Send one requested email (the task's body). Returns (status, retry_in): status is 'sent',
    'skipped', 'failed', 'retry' (a transient error: try again in `retry_in` seconds) or 'busy'."""

    if not transactional_email_claim(email_id=email_id):
        return "busy", None
    row = TransactionalEmail.objects.get(pk=email_id)
    # From the database, not connection.tenant: a worker caches its tenants and would miss a deactivation.
    if not Tenant.objects.serving().filter(schema_name=row.tenant).exists():
        return _finish(row, None, None, status="skipped", reason="Not sent: the account is deactivated.")

    order = Order.objects.select_related("customer").filter(pk=row.order_id).first()
    if order is None:
        return _finish(row, None, None, status="skipped", reason="The order no longer exists.")
    customer = order.customer
    title = f"{TITLES[row.kind]} for order {order.number or order.external_id}"
    if customer.erased_at is not None or not customer.email:
        return _finish(row, order, customer, status="skipped", reason=f"{title} not sent: no email address.")
    if not customer.email_transactional:
        return _finish(
            row,
            order,
            customer,
            status="skipped",
            reason=f"{title} not sent: the customer turned transactional email off.",
        )
    try:
        message = _compose(row, order, customer)
    except ValidationError as error:
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
        return _finish(
            row,
            order,
            customer,
            status="failed",
            reason=f"{title} not sent: the template is broken ({detail}).",
        )

    try:
        with mail_connection() as mail:
            mail.send_messages([message])
    except Exception as exc:
        error = delivery_error(exc)
        # The ledger is in the public schema, beyond an erasure's reach: a server's reply that quotes
        # the address (550 <ann@...>: unknown user) is kept without it.
        why = redact(error.reason, customer.email)
        if error.permanent or row.attempts >= MAX_ATTEMPTS:
            return _finish(
                row,
                order,
                customer,
                status="failed",
                reason=f"{title} not sent: {why}",
                body=f"{title} not sent: {error.reason}",
            )
        # Transient: the lease now runs until the retry, so the sweeper leaves it to the retry
        # and picks it up only if that retry is lost.
        retry_in = exponential_backoff(
            row.attempts, base=RETRY_BACKOFF_BASE_SECONDS, cap=RETRY_BACKOFF_MAX_SECONDS
        )
        TransactionalEmail.objects.filter(pk=row.pk, status="sending").update(
            lease_until=timezone.now() + timedelta(seconds=retry_in), reason=why[:2000]
        )
        return "retry", retry_in
    return _finish(
        row,
        order,
        customer,
        status="sent",
        reason=f"{title} sent.",
        body=f"{title} sent to {customer.email}.",
        message_id=message.extra_headers["Message-ID"],
    )


def _finish(row, order, customer, *, status, reason, body=None, message_id=""):
    """Record the outcome on the ledger row and, once, as the customer's interaction.

    The ledger lives in the public schema, out of reach of a GDPR erasure: it never holds the
    address (callers redact servers' replies). The interaction (erased with the customer) may.
    """

    now = timezone.now()
    with transaction.atomic():
        updated = TransactionalEmail.objects.filter(pk=row.pk, status="sending").update(
            status=status,
            reason=reason[:2000],
            message_id=message_id,
            lease_until=None,
            sent_at=now if status == "sent" else None,
        )
        if updated and customer is not None:
            interaction_add(
                customer=customer,
                kind="transactional_email",
                body=body or reason,
                data={
                    "key": row.kind,
                    "status": status,
                    "order_id": order.pk,
                    "order_number": order.number,
                    "message_id": message_id,
                },
            )
    return status, None


def _compose(row, order, customer):

    template = transactional_template(key=row.kind)
    # By name, not connection.tenant: under schema_context (the webshop consumer) that is a stand-in.
    tenant = Tenant.objects.filter(schema_name=connection.schema_name).first()
    base_url = tokens.tenant_base_url(tenant) if tenant is not None else settings.APP_URL
    # Product cards as the shop has them now (a design compiles every product, in stock or not).
    html_body, text_body = cards_refresh_text(template.html_body, template.text_body)
    rendered = render_message(
        subject=template.subject,
        html=html_body,
        text=text_body,
        context=transactional_context(customer=customer, order=order, base_url=base_url),
    )
    # An order email goes out whatever the sender setting says: a default sender the tenant may not
    # use (saved before sender domains existed, or its domain failed its check) gives way to the
    # platform address rather than holding up the customer's confirmation.
    from_email = senders.sender_or_platform(tenant.from_email if tenant is not None else "")
    from_name = (tenant and (tenant.from_name or tenant.name)) or ""
    domain = sending_domain(from_email)
    digest = salted_hmac(
        "campaigns.transactional.message-id",
        f"{connection.schema_name}.{row.order_id}.{row.kind}",
        algorithm="sha256",
    ).hexdigest()[:16]
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=formataddr((from_name, from_email)) if from_name else from_email,
        to=[customer.email],
        reply_to=[tenant.reply_to] if tenant is not None and tenant.reply_to else None,
        headers={
            # The same Message-ID on every attempt: a resend after a crash is recognisably the same email.
            "Message-ID": f"<t{row.order_id}.{row.kind}.{digest}@{domain}>",
            "Auto-Submitted": "auto-generated",  # RFC 3834: no vacation auto-replies to the shop
            "X-CRM-Transactional": row.kind,
        },
    )
    message.attach_alternative(without_empty_links(rendered.html), "text/html")
    return message


def transactional_context(*, customer, order, base_url):
    """What an order email's template sees. No `unsubscribe_url` and no `web_version_url`: an order
    email is no marketing (nothing to unsubscribe from, no campaign recipient to show a web version
    of); its way out is the preference centre, where the customer turns order emails off. The block
    editor's footer shows the links the message has (campaigns/design.py)."""
    return {
        "customer": customer_context(customer),
        "order": order_context(order),
        "preferences_url": tokens.preferences_url(base_url, customer.pk),
    }


def transactional_preview_context(*, customer=None):
    """What a preview of an order email shows: the customer (or sample values), their latest order
    (or a sample one) and the preference centre: the values it is sent with, nothing else."""
    order = Order.objects.filter(customer=customer).first() if customer is not None else None
    base_url = tokens.tenant_base_url()
    return {
        "customer": customer_context(customer) if customer is not None else sample_context(),
        "order": order_context(order) if order is not None else sample_order_context(),
        "preferences_url": tokens.preferences_url(base_url, customer.pk)
        if customer is not None
        else f"{base_url}/p/preview",
    }


def without_empty_links(html):
    """The HTML with every link whose target rendered empty reduced to its text: a dead link (or one
    a mail client resolves to the message itself) is worse than none."""
    return EMPTY_LINK_RE.sub(lambda match: match.group(2), html)


def transactional_emails_requeue(*, older_than=STUCK_AFTER):
    """Enqueue again the requests of every serving tenant whose task never claimed them or whose
    worker died (a deactivated tenant's wait, sending nothing, until it is active again).

    Returns how many it enqueued. Runs from the public schema (beat).
    """

    now = timezone.now()
    stuck = (
        TransactionalEmail.objects.filter(
            Q(status="pending", created_at__lt=now - older_than) | Q(status="sending", lease_until__lt=now)
        )
        .filter(tenant__in=Tenant.objects.serving().values("schema_name"))
        .values_list("id", "tenant")[:5000]
    )
    count = 0
    for email_id, schema in stuck:
        _enqueue(email_id, schema)
        count += 1
    return count


# --- tasks ----------------------------------------------------------------------------------------


@shared_task(
    bind=True, name="campaigns.transactional.send_transactional_email", ignore_result=True, max_retries=None
)
def send_transactional_email(self, email_id):
    """Send one requested order email; transient delivery errors retry with exponential backoff."""
    status, retry_in = transactional_email_send(email_id=email_id)
    if status == "retry" and not self.request.is_eager:
        raise self.retry(countdown=retry_in + 1)
    return status


@shared_task(name="campaigns.transactional.requeue_transactional_emails", ignore_result=True)
def requeue_transactional_emails():
    return transactional_emails_requeue()
