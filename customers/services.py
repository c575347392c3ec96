"""Writes to customers, their tags, addresses, orders and activity, one customer or order at a time.

Other apps change a customer's row only through these functions. The set-based writers of the same
tables are elsewhere, for speed: the CSV import (customers.importer: COPY and upserts in SQL), the
interaction rows that the sender (campaigns.sender: email_sent), the hit roll-up (tracking.rollup:
email_opened, email_clicked) and flows' custom events (flows.services: custom_event) insert many at
a time, and the demo data (crm_project's seed_demo command).

Services take validated data (the input serializers of customers.serializers validate it for the API,
the bulk endpoints and the webshop's bus; the services import no API code), run in one transaction,
emit their domain event inside it and call the higher apps' hooks after commit.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Exists, F, OuterRef, Q, TextField
from django.db.models.functions import Cast, Coalesce, Lower
from django.utils import timezone
from django_tenants.utils import schema_context

from events.models import OutboxEvent
from events.services import event_emit

from . import hooks, selectors
from .attribution import order_attribution_follow, orders_attribute
from .models import (
    NON_COUNTING_ORDER_STATUSES,
    Address,
    Customer,
    CustomerTag,
    ErasedAddress,
    ImportJob,
    Interaction,
    Order,
    OrderItem,
    Product,
    Tag,
)
from .privacy import address_hash, redact, redact_data

logger = logging.getLogger(__name__)

PROFILE_FIELDS = (
    "external_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "city",
    "country",
    "attributes",
    "email_marketing",
    "email_transactional",
    "unsubscribed_at",
)
# What a complete write (POST, PUT, a new customer of an upsert or an order) stores for a field it
# does not mention.
CUSTOMER_DEFAULTS = {
    "external_id": None,
    "first_name": "",
    "last_name": "",
    "phone": "",
    "city": "",
    "country": "",
    "tags": [],
    "attributes": {},
    "email_marketing": False,
    "email_transactional": True,
    "unsubscribed_at": None,
    "addresses": [],
}
ADDRESS_FIELDS = ("kind", "line1", "line2", "city", "postal_code", "country", "is_default")
ORDER_INTERACTION_KINDS = ("order_placed", "order_status")
RESUBSCRIBE_IGNORED = (
    "A write through {source} asked to turn marketing email back on; ignored, because the customer "
    "unsubscribed on {date} UTC. Only the customer (preference centre) or an admin giving a reason "
    "can resubscribe them."
)


# --- customers ------------------------------------------------------------------------------------

# customer.* events carry the customer exactly as GET /api/customers/{id} returns it. That shape has
# one definition, the API's serializer; the API layer plugs it in at start-up (customers.apps), so the
# services need no API code.
_representation = None


def customer_representation_register(*, render):
    """Set how a customer (tags and addresses prefetched) is shown: render(customer) -> dict."""
    global _representation
    _representation = render


def customer_representation(*, customer):
    """The customer (tags and addresses prefetched) as the API shows it."""
    return _representation(customer)


def customer_payload(*, customer_id):
    """The customer exactly as GET /api/customers/{id} returns it (the `data` of customer.* events)."""
    customer = Customer.objects.prefetch_related("tags", "addresses").get(pk=customer_id)
    return customer_representation(customer=customer)


def _comparable(payload):
    data = {key: value for key, value in payload.items() if key != "updated_at"}
    data["addresses"] = [{k: v for k, v in a.items() if k != "id"} for a in payload["addresses"]]
    return data


def _changed(before, after):
    before, after = _comparable(before), _comparable(after)
    return [key for key in after if before.get(key) != after[key]]


def _unique_check(*, email=None, external_id=None, exclude_id=None):
    errors = {}
    if email and Customer.objects.filter(email=email).exclude(pk=exclude_id).exists():
        errors["email"] = [f"A customer with the email '{email}' already exists."]
    if external_id and Customer.objects.filter(external_id=external_id).exclude(pk=exclude_id).exists():
        errors["external_id"] = [f"A customer with the external_id '{external_id}' already exists."]
    if errors:
        raise ValidationError(errors)


def _integrity_error(error, *, email=None, external_id=None):
    """A unique violation lost to a concurrent request, named like the check that lost the race."""
    text = str(error)
    if "email" in text:
        return ValidationError({"email": [f"A customer with the email '{email}' already exists."]})
    if "external_id" in text:
        return ValidationError(
            {"external_id": [f"A customer with the external_id '{external_id}' already exists."]}
        )
    return ValidationError({"non_field_errors": ["A conflicting customer was written concurrently."]})


def tags_ensure(*, names):
    """Tag ids for these names (any case), creating the missing tags; set-based, race-free."""
    names = [name.strip() for name in names if name and name.strip()]
    if not names:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Tag._meta.db_table} (name, created_at) "
            "SELECT DISTINCT ON (lower(n)) n, now() FROM unnest(%s::text[]) AS n "
            "ON CONFLICT ((lower(name))) DO NOTHING",
            [names],
        )
    return list(selectors.tag_ids_named(names=names).values())


def _tags_set(customer, names):
    tag_ids = set(tags_ensure(names=names))
    current = set(CustomerTag.objects.filter(customer=customer).values_list("tag_id", flat=True))
    CustomerTag.objects.filter(customer=customer, tag_id__in=current - tag_ids).delete()
    CustomerTag.objects.bulk_create(
        [CustomerTag(customer=customer, tag_id=tag_id) for tag_id in tag_ids - current], ignore_conflicts=True
    )


def _addresses_set(customer, addresses):
    current = [
        {field: getattr(address, field) for field in ADDRESS_FIELDS} for address in customer.addresses.all()
    ]
    wanted = [{field: address.get(field, "") for field in ADDRESS_FIELDS} for address in addresses]
    for address in wanted:
        address["is_default"] = bool(address["is_default"])
    if current == wanted:
        return
    customer.addresses.all().delete()
    Address.objects.bulk_create([Address(customer=customer, **address) for address in wanted])


def customer_create(*, data, author=None):
    """Create a customer from complete validated data (CustomerInputSerializer(...).complete())."""
    data = dict(data)
    tags = data.pop("tags", None) or []
    addresses = data.pop("addresses", None) or []
    _unique_check(email=data.get("email"), external_id=data.get("external_id"))
    with transaction.atomic():
        try:
            with transaction.atomic():
                customer = Customer.objects.create(**{k: v for k, v in data.items() if k in PROFILE_FIELDS})
        except IntegrityError as error:
            raise _integrity_error(error, email=data.get("email"), external_id=data.get("external_id"))
        _erased_address_returns(customer.email)
        if tags:
            _tags_set(customer, tags)
        if addresses:
            _addresses_set(customer, addresses)
        event_emit(type="customer.created", data=customer_payload(customer_id=customer.pk))
        hooks.customers_changed_note(customer_ids=[customer.pk])
    return customer


def customer_update(*, customer, data, author=None, source="the API"):
    """Apply validated data (partial or complete) to a customer. Returns (customer, changed_fields).

    Never resubscribes: for a customer who unsubscribed, `email_marketing: true` and a cleared
    `unsubscribed_at` are left out (the rest applies), recorded as a `resubscribe_ignored`
    interaction naming `source` and logged. Only the person (the preference centre) or an admin
    with a reason may lift an unsubscribe: `customer_resubscribe`.
    """
    data = dict(data)
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            raise ValidationError({"non_field_errors": ["This customer's personal data was erased."]})
        _unique_check(email=data.get("email"), external_id=data.get("external_id"), exclude_id=customer.pk)
        before = customer_payload(customer_id=customer.pk)
        _resubscribe_left_out(customer, data, source=source, author=author)
        profile = {key: value for key, value in data.items() if key in PROFILE_FIELDS}
        dirty = [key for key, value in profile.items() if getattr(customer, key) != value]
        if dirty:
            for key in dirty:
                setattr(customer, key, profile[key])
            try:
                with transaction.atomic():
                    customer.save(update_fields=[*dirty, "updated_at"])
            except IntegrityError as error:
                raise _integrity_error(error, email=data.get("email"), external_id=data.get("external_id"))
            if "email" in dirty:
                _erased_address_returns(customer.email)
        if "tags" in data:
            _tags_set(customer, data["tags"])
        if "addresses" in data:
            _addresses_set(customer, data["addresses"])
        after = customer_payload(customer_id=customer.pk)
        changed = _changed(before, after)
        if not changed:
            return customer, []
        if not dirty:  # only tags or addresses changed: the customer still counts as updated
            Customer.objects.filter(pk=customer.pk).update(updated_at=timezone.now())
            after = customer_payload(customer_id=customer.pk)
        event_emit(type="customer.updated", data={**after, "changed": changed})
        hooks.customers_changed_note(customer_ids=[customer.pk])
    return customer, changed


def customer_upsert(*, data, source="the API"):
    """Create or update by external_id, else by email. `data` is CustomerInputSerializer(partial=True)
    validated data. Returns (customer, status) with status 'created', 'updated' or 'unchanged'.
    An update never resubscribes (see customer_update); `source` names the caller in that record."""
    customer = None
    if data.get("external_id"):
        customer = Customer.objects.filter(external_id=data["external_id"]).first()
    if customer is None and data.get("email"):
        customer = Customer.objects.filter(email=data["email"]).first()
    if customer is None:
        if not data.get("email"):
            raise ValidationError({"email": ["This field is required to create a customer."]})
        try:
            return customer_create(data={**CUSTOMER_DEFAULTS, **data}), "created"
        except ValidationError:
            # Lost a race with a concurrent create of the same customer: update that one instead.
            customer = Customer.objects.filter(email=data["email"]).first()
            if customer is None:
                raise
    customer, changed = customer_update(customer=customer, data=data, source=source)
    return customer, ("updated" if changed else "unchanged")


def _resubscribe_left_out(customer, data, *, source, author=None):
    """Drop from `data` what would lift the customer's unsubscribe, and record that it was asked."""
    if customer.unsubscribed_at is None:
        return  # a first opt-in, or consent given again by someone who never unsubscribed
    asked = []
    if data.get("email_marketing") and not customer.email_marketing:
        asked.append("email_marketing")
    if "unsubscribed_at" in data and data["unsubscribed_at"] is None:
        asked.append("unsubscribed_at")
    if data.get("email_marketing"):
        data.pop("email_marketing")
    if "unsubscribed_at" in data and data["unsubscribed_at"] != customer.unsubscribed_at:
        data.pop("unsubscribed_at")
    if not asked:
        return
    logger.info(
        "customer %s unsubscribed at %s: resubscribe by %s ignored",
        customer.pk,
        customer.unsubscribed_at,
        source,
    )
    Interaction.objects.create(
        customer=customer,
        kind="resubscribe_ignored",
        body=RESUBSCRIBE_IGNORED.format(
            source=source, date=customer.unsubscribed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        ),
        data={"source": source, "fields": asked},
        author=author,
    )


RESUBSCRIBE_SOURCES = ("preferences", "unsubscribe page", "admin")


def customer_resubscribe(*, customer, source, reason, author=None, also=None):
    """Lift a customer's unsubscribe: marketing email on again. The one way to do it, for the person
    themselves (`source` 'preferences' or 'unsubscribe page') or an admin (`source` 'admin', `author`
    and a `reason` required). Recorded as a `resubscribed` interaction saying who, why and when, and
    published as customer.updated. `also`: other profile fields the same person changes at once (the
    preference centre's transactional choice), in the same update and event. Returns the names of the
    fields that changed ([] when the customer was subscribed already)."""
    reason = (reason or "").strip()
    if source not in RESUBSCRIBE_SOURCES:
        raise ValueError(f"unknown resubscribe source {source!r}")
    if source == "admin" and (author is None or not reason):
        raise ValidationError({"reason": ["Say why this customer may get marketing email again."]})
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            raise ValidationError({"non_field_errors": ["This customer's personal data was erased."]})
        if customer.email_marketing and customer.unsubscribed_at is None:
            return []
        before = customer_payload(customer_id=customer.pk)
        was_unsubscribed = customer.unsubscribed_at
        now = timezone.now()
        extra = {key: value for key, value in (also or {}).items() if key in PROFILE_FIELDS}
        Customer.objects.filter(pk=customer.pk).update(
            **extra, email_marketing=True, unsubscribed_at=None, updated_at=now
        )
        who = author.get_username() if author is not None else "the customer"
        Interaction.objects.create(
            customer=customer,
            kind="resubscribed",
            body=f"Resubscribed to marketing email by {who} ({source}): {reason}",
            data={
                "source": source,
                "by": who,
                "reason": reason,
                "unsubscribed_at": was_unsubscribed.isoformat() if was_unsubscribed else None,
            },
            author=author,
            occurred_at=now,
        )
        after = customer_payload(customer_id=customer.pk)
        changed = _changed(before, after)
        event_emit(type="customer.updated", data={**after, "changed": changed})
        hooks.customers_changed_note(customer_ids=[customer.pk])
    return changed


CONSENT_REASON_MAX = 1000


def customer_consent_record(*, customer, give, reason, author):
    """An admin records a change of marketing consent, saying why (a phone call, a signed form): the
    one way the admin changes consent, so every change names who, why and when.

    give=False unsubscribes (as the person's own link would, event customer.unsubscribed); give=True
    records consent given, and for someone who unsubscribed is `customer_resubscribe` by an admin.
    Returns True when something changed."""
    reason = (reason or "").strip()
    if author is None or not reason or len(reason) > CONSENT_REASON_MAX:
        raise ValidationError(
            {"reason": [f"Say why the consent changes (up to {CONSENT_REASON_MAX} characters)."]}
        )
    who = author.get_username()
    if give:
        current = (
            Customer.objects.filter(pk=customer.pk).values_list("unsubscribed_at", "email_marketing").get()
        )
        if current[0] is not None:
            return bool(customer_resubscribe(customer=customer, source="admin", reason=reason, author=author))
        if current[1]:
            return False
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            raise ValidationError({"non_field_errors": ["This customer's personal data was erased."]})
        now = timezone.now()
        if give:
            if customer.email_marketing or customer.unsubscribed_at is not None:
                return False
            before = customer_payload(customer_id=customer.pk)
            Customer.objects.filter(pk=customer.pk).update(email_marketing=True, updated_at=now)
            kind, body = "preferences", f"Marketing consent recorded by {who} (admin): {reason}"
        else:
            if not customer.email_marketing and customer.unsubscribed_at is not None:
                return False
            Customer.objects.filter(pk=customer.pk).update(
                email_marketing=False, unsubscribed_at=customer.unsubscribed_at or now, updated_at=now
            )
            kind, body = "unsubscribed", f"Unsubscribed from marketing email by {who} (admin): {reason}"
        Interaction.objects.create(
            customer=customer,
            kind=kind,
            body=body,
            data={"source": "admin", "by": who, "reason": reason, "email_marketing": bool(give)},
            author=author,
            occurred_at=now,
        )
        after = customer_payload(customer_id=customer.pk)
        if give:
            event_emit(type="customer.updated", data={**after, "changed": _changed(before, after)})
        else:
            event_emit(type="customer.unsubscribed", data=after, occurred_at=now)
        hooks.customers_changed_note(customer_ids=[customer.pk])
    return True


def customer_unsubscribe(*, customer_id, source, data=None, now=None):
    """Withdraw a customer's marketing consent (a campaign's unsubscribe link, the preference centre,
    the sending service). True when their state changed: then it is logged as an `unsubscribed`
    interaction and published as customer.unsubscribed. A second call, or one for an erased customer,
    changes nothing, logs nothing and emits nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = (
            Customer.objects.filter(pk=customer_id, erased_at__isnull=True)
            .filter(Q(email_marketing=True) | Q(unsubscribed_at__isnull=True))
            .update(
                email_marketing=False, unsubscribed_at=Coalesce(F("unsubscribed_at"), now), updated_at=now
            )
        )
        if not changed:
            return False
        interaction_add(
            customer=Customer(pk=customer_id),
            kind="unsubscribed",
            body=f"Unsubscribed from marketing email ({source}).",
            data={"source": source, **(data or {})},
            occurred_at=now,
        )
        event_emit(
            type="customer.unsubscribed", data=customer_payload(customer_id=customer_id), occurred_at=now
        )
        hooks.customers_changed_note(customer_ids=[customer_id])
    return True


def _erased_address_returns(email):
    """A customer was created with (or changed to) an address erased before: a new sign-up. It leaves
    the erased list, and what was kept of it as a hash holds the address again (hooks)."""
    if not email:
        return
    if ErasedAddress.objects.filter(email_hash=address_hash(email)).delete()[0]:
        hooks.run_in_transaction(hooks.erased_address_returned, email=email)


def customer_erase(*, customer):
    """GDPR erasure: the row stays (orders and history keep their customer) without personal data,
    and nothing brings the data back.

    Cleared: email (NULL), external_id, names, phone, city, country, attributes, consent, addresses and
    tags (a tag can say as much about a person as a note; a tag no other customer has is deleted). Orders and their items are kept (no PII);
    interactions are kept with their bodies cleared, and their data cleared except for order references.
    Also here: the admin's log (its lines name the customer by email) and customer imports' error
    reports lose the address, the outbox loses every unpublished event about the customer and the
    published ones lose their personal data, and the address goes on the erased list as a keyed hash
    (customers.privacy: an import of it is refused). Higher apps scrub their copies in the same
    transaction (customers.hooks.customer_erased: recipients, suppressions, the transactional email
    ledger, tracking hits), and keep nothing of the customer when opens, clicks or webhooks arrive later.
    """
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            return customer
        before = customer_payload(customer_id=customer.pk)
        email, external_id = customer.email, customer.external_id
        customer.addresses.all().delete()
        tag_ids = list(CustomerTag.objects.filter(customer=customer).values_list("tag_id", flat=True))
        CustomerTag.objects.filter(customer=customer).delete()
        # A tag nobody else has can only be about this person (a tag named after them): it goes too.
        Tag.objects.filter(pk__in=tag_ids).exclude(
            Exists(CustomerTag.objects.filter(tag=OuterRef("pk")))
        ).delete()
        Interaction.objects.filter(customer=customer).update(body="")
        Interaction.objects.filter(customer=customer).exclude(kind__in=ORDER_INTERACTION_KINDS).update(
            data={}
        )
        now = timezone.now()
        Customer.objects.filter(pk=customer.pk).update(
            email=None,
            external_id=None,
            first_name="",
            last_name="",
            phone="",
            city="",
            country="",
            attributes={},
            email_marketing=False,
            email_transactional=False,
            unsubscribed_at=customer.unsubscribed_at or now,
            erased_at=now,
            updated_at=now,
        )
        if email:
            ErasedAddress.objects.get_or_create(email_hash=address_hash(email), defaults={"erased_at": now})
        _outbox_scrub(customer_id=customer.pk)
        _admin_log_scrub(customer_id=customer.pk, email=email, external_id=external_id)
        _import_reports_scrub(email=email, external_id=external_id)
        hooks.run_in_transaction(
            hooks.customer_erased, customer_id=customer.pk, email=email, external_id=external_id
        )
        Interaction.objects.create(
            customer=customer, kind="erased", body="Personal data erased.", occurred_at=now
        )
        after = customer_payload(customer_id=customer.pk)
        event_emit(type="customer.updated", data={**after, "changed": _changed(before, after)})
    customer.refresh_from_db()
    return customer


def _outbox_scrub(*, customer_id):
    """Events about the customer: those not published yet are dropped (what consumers learn is the
    erasure's own customer.updated, without personal data); published ones, kept for the record,
    lose the personal data (customer.* keep only the id; others lose the email)."""
    about = (
        "tenant = %s AND ((type LIKE 'customer.%%' AND data->>'id' = %s) OR "
        "(NOT type LIKE 'customer.%%' AND (data->>'customer_id' = %s OR data->>'customer' = %s)))"
    )
    params = [connection.schema_name, str(customer_id), str(customer_id), str(customer_id)]
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        # The publisher holds a row it is sending (FOR UPDATE): this waits for it, then finds it published.
        cursor.execute(f"DELETE FROM {table} WHERE published_at IS NULL AND {about}", params)
        cursor.execute(
            f"UPDATE {table} SET data = CASE WHEN type LIKE 'customer.%%' "
            "THEN jsonb_build_object('id', %s::bigint, 'erased', true) "
            "ELSE data - 'email' - 'customer_email' END "
            f"WHERE {about}",
            [customer_id, *params],
        )


def _admin_log_scrub(*, customer_id, email, external_id):
    """The admin's "recent actions" name the customer's change form by its email (str(customer)), and
    any other object's line may quote the address."""
    customer_type = ContentType.objects.get_for_model(Customer)
    LogEntry.objects.filter(content_type=customer_type, object_id=str(customer_id)).update(
        object_repr=f"erased customer #{customer_id}"
    )
    if not email:
        return
    values = [value for value in (email, external_id) if value]
    matches = Q()
    for value in values:
        matches |= Q(object_repr__icontains=value) | Q(change_message__icontains=value)
    for entry in LogEntry.objects.filter(matches):
        LogEntry.objects.filter(pk=entry.pk).update(
            object_repr=redact(entry.object_repr, *values)[:200],
            change_message=redact(entry.change_message, *values),
        )


def _import_reports_scrub(*, email, external_id):
    """Import reports quote the cells they refused ("external_id 'X' belongs to another customer")."""
    needles = [value for value in (email, f"'{external_id}'" if external_id else None) if value]
    if not needles:
        return
    matches = Q()
    for needle in needles:
        matches |= Q(error__icontains=needle) | Q(errors_text__icontains=needle)
    jobs = ImportJob.objects.annotate(errors_text=Cast("errors", TextField())).filter(matches)
    for job in jobs:
        ImportJob.objects.filter(pk=job.pk).update(
            error=redact(job.error, *needles),
            errors=redact_data(job.errors, *needles),
        )


def customers_tag(*, customer_ids, tag_names):
    """Add tags to many customers, set-based. Returns how many customers gained a tag."""
    return _customers_retag(customer_ids=customer_ids, tag_names=tag_names, add=True)


def customers_untag(*, customer_ids, tag_names):
    """Remove tags from many customers, set-based. Returns how many customers lost a tag."""
    return _customers_retag(customer_ids=customer_ids, tag_names=tag_names, add=False)


def _customers_retag(*, customer_ids, tag_names, add):
    customer_ids = [int(pk) for pk in customer_ids]
    if not customer_ids or not tag_names:
        return 0
    with transaction.atomic():
        if add:
            tag_ids = tags_ensure(names=tag_names)
            sql = (
                f"INSERT INTO {CustomerTag._meta.db_table} (customer_id, tag_id, created_at) "
                f"SELECT c.id, t.id, now() FROM {Customer._meta.db_table} c CROSS JOIN unnest(%s::bigint[]) AS t(id) "
                "WHERE c.id = ANY(%s) AND c.erased_at IS NULL ON CONFLICT DO NOTHING RETURNING customer_id"
            )
        else:
            tag_ids = list(selectors.tag_ids_named(names=tag_names).values())
            sql = (
                f"DELETE FROM {CustomerTag._meta.db_table} WHERE tag_id = ANY(%s) AND customer_id = ANY(%s) "
                "RETURNING customer_id"
            )
        if not tag_ids:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(sql, [tag_ids, customer_ids])
            touched = sorted({row[0] for row in cursor.fetchall()})
        if touched:
            Customer.objects.filter(pk__in=touched).update(updated_at=timezone.now())
            _emit_updated(customer_ids=touched, changed=["tags"])
            hooks.customers_changed_note(customer_ids=touched)
    return len(touched)


def _emit_updated(*, customer_ids, changed, batch=500):
    for start in range(0, len(customer_ids), batch):
        chunk = customer_ids[start : start + batch]
        for customer in Customer.objects.filter(pk__in=chunk).prefetch_related("tags", "addresses"):
            event_emit(
                type="customer.updated",
                data={**customer_representation(customer=customer), "changed": changed},
            )


# --- orders ---------------------------------------------------------------------------------------


def customer_aggregates_refresh(*, customer_id):
    """Recompute one customer's aggregates from its counting orders, in one statement.

    Callers hold the customer's row lock (SELECT ... FOR UPDATE), so concurrent order writes for one
    customer serialise here and the figures stay exact.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Customer._meta.db_table} AS c
               SET total_spent = a.total_spent, order_count = a.order_count,
                   first_order_at = a.first_order_at, last_order_at = a.last_order_at
              FROM (SELECT COALESCE(SUM(total), 0) AS total_spent, COUNT(*) AS order_count,
                           MIN(placed_at) AS first_order_at, MAX(placed_at) AS last_order_at
                      FROM {Order._meta.db_table}
                     WHERE customer_id = %s AND NOT (status = ANY(%s))) AS a
             WHERE c.id = %s
            """,
            [customer_id, list(NON_COUNTING_ORDER_STATUSES), customer_id],
        )


def _order_customer(data):
    """The order's customer: by id, else external_id, else email; created when unknown."""
    if data.get("customer"):
        customer = Customer.objects.filter(pk=data["customer"]).first()
        if customer is None:
            raise ValidationError({"customer": [f"There is no customer with id {data['customer']}."]})
        return customer
    if data.get("customer_external_id"):
        customer = Customer.objects.filter(external_id=data["customer_external_id"]).first()
        if customer is not None:
            return customer
    email = data.get("customer_email")
    if not email:
        raise ValidationError(
            {"customer_email": ["Required to create the customer of an unknown customer_external_id."]}
        )
    customer = Customer.objects.filter(email=email).first()
    if customer is not None:
        return customer
    fields = {**CUSTOMER_DEFAULTS, "email": email}
    if data.get("customer_external_id"):
        fields["external_id"] = data["customer_external_id"]
    try:
        with transaction.atomic():
            return customer_create(data=fields)
    except ValidationError:
        # A concurrent request created it a moment ago.
        customer = Customer.objects.filter(email=email).first()
        if customer is None:
            raise
        return customer


def _order_items_set(order, items):
    current = [(i.sku, i.name, i.quantity, i.unit_price) for i in order.items.all()]
    wanted = [(i["sku"], i.get("name", ""), i["quantity"], i["unit_price"]) for i in items]
    if current == wanted:
        return False
    order.items.all().delete()
    OrderItem.objects.bulk_create(
        [OrderItem(order=order, sku=s, name=n, quantity=q, unit_price=p) for s, n, q, p in wanted]
    )
    return True


def _order_placed_interaction(order):
    Interaction.objects.create(
        customer_id=order.customer_id,
        kind="order_placed",
        body=f"Order {order} placed: {order.total} {order.currency}",
        data={
            "order_id": order.pk,
            "external_id": order.external_id,
            "number": order.number,
            "total": str(order.total),
            "currency": order.currency,
            "status": order.status,
        },
        occurred_at=order.placed_at,
    )


def _order_status_interaction(order, old):
    Interaction.objects.create(
        customer_id=order.customer_id,
        kind="order_status",
        body=f"Order {order}: {old} → {order.status}",
        data={
            "order_id": order.pk,
            "external_id": order.external_id,
            "number": order.number,
            "old": old,
            "new": order.status,
        },
    )


def order_upsert(*, data, attribute=True):
    """Record an order pushed by the webshop, idempotent by external_id. Returns (order, created).

    `data` is OrderInputSerializer validated data. Re-delivery updates the order (status, totals,
    items); the customer's aggregates are recomputed under its row lock either way. An order without
    an attribution is attributed in the same transaction (a new one, or one whose first push failed
    before it was); `attribute=False` leaves that to the caller, who attributes many at once (the
    bulk API: customers.bulk).
    """
    fields = {key: data[key] for key in ("number", "status", "currency", "total", "placed_at") if key in data}
    with transaction.atomic():
        customer = _order_customer(data)
        # The customer's row lock serialises every order write for this customer (exact aggregates).
        Customer.objects.select_for_update().filter(pk=customer.pk).first()
        order = Order.objects.select_for_update().filter(external_id=data["external_id"]).first()
        created, old_status = False, None
        if order is None:
            try:
                with transaction.atomic():
                    order = Order.objects.create(external_id=data["external_id"], customer=customer, **fields)
                created = True
            except IntegrityError:
                order = Order.objects.select_for_update().get(external_id=data["external_id"])
        if not created:
            if order.customer_id != customer.pk:
                raise ValidationError(
                    {
                        "customer": [
                            f"Order '{order.external_id}' belongs to another customer (id {order.customer_id})."
                        ]
                    }
                )
            old_status = order.status
            dirty = [key for key, value in fields.items() if getattr(order, key) != value]
            for key in dirty:
                setattr(order, key, fields[key])
            if dirty:
                order.save()
        if "items" in data:
            _order_items_set(order, data["items"])
        customer_aggregates_refresh(customer_id=customer.pk)
        if created:
            _order_placed_interaction(order)
        else:
            if old_status != order.status:
                _order_status_interaction(order, old_status)
            if dirty:
                order_attribution_follow(order=order)
        if attribute:
            orders_attribute(order_ids=[order.pk])
        _after_order_commit(order, created=created, old_status=old_status)
    return order, created


def order_set_status(*, order, status):
    """Change an order's status (PATCH /api/orders/{id}); aggregates follow. Returns the order."""
    with transaction.atomic():
        Customer.objects.select_for_update().filter(pk=order.customer_id).first()
        order = Order.objects.select_for_update().get(pk=order.pk)
        old_status = order.status
        if old_status == status:
            return order
        order.status = status
        order.save(update_fields=["status", "updated_at"])
        customer_aggregates_refresh(customer_id=order.customer_id)
        _order_status_interaction(order, old_status)
        order_attribution_follow(order=order)
        _after_order_commit(order, created=False, old_status=old_status, recorded=False)
    return order


def _after_order_commit(order, *, created, old_status, recorded=True):
    order_id, new_status = order.pk, order.status
    if recorded:
        transaction.on_commit(lambda: hooks.run(hooks.order_recorded, order_id=order_id, created=created))
    if old_status is not None and old_status != new_status:
        transaction.on_commit(
            lambda: hooks.run(hooks.order_status_changed, order_id=order_id, old=old_status, new=new_status)
        )


# --- activity -------------------------------------------------------------------------------------


def interaction_add(*, customer, kind, body="", data=None, occurred_at=None, author=None):
    """Record an interaction (a user's note/call/meeting, or an app's email_sent etc.)."""
    return Interaction.objects.create(
        customer=customer,
        kind=kind,
        body=body,
        data=data or {},
        occurred_at=occurred_at or timezone.now(),
        author=author,
    )


# --- tags -----------------------------------------------------------------------------------------


def products_upsert(*, products):
    """Write validated products (dicts of Product fields, distinct SKUs) in one INSERT ... ON CONFLICT
    (sku) DO UPDATE, since a webshop pushes its whole catalogue in batches of 1000.
    Returns {sku: (id, created)}."""
    skus = [data["sku"] for data in products]
    now = timezone.now()
    with transaction.atomic():
        existing = set(Product.objects.filter(sku__in=skus).values_list("sku", flat=True))
        Product.objects.bulk_create(
            [Product(**data, created_at=now, updated_at=now) for data in products],
            update_conflicts=True,
            unique_fields=["sku"],
            update_fields=["name", "url", "image_url", "price", "currency", "in_stock", "updated_at"],
        )
        ids = dict(Product.objects.filter(sku__in=skus).values_list("sku", "id"))
    return {sku: (ids[sku], sku not in existing) for sku in skus}


def tag_create(*, name):
    """A tag by this name (any case), created if missing."""
    tags_ensure(names=[name])
    return Tag.objects.alias(lname=Lower("name")).get(lname=name.strip().lower())


def tag_delete(*, tag):
    """Delete a tag: its customers lose it first (each gets a customer.updated event)."""
    with transaction.atomic():
        customer_ids = list(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True))
        customers_untag(customer_ids=customer_ids, tag_names=[tag.name])
        tag.delete()


# --- imports --------------------------------------------------------------------------------------


def import_job_start(*, upload, user=None):
    """Store an uploaded CSV and run its import on a worker (after commit)."""
    job = ImportJob(filename=getattr(upload, "name", "") or "", created_by=user, total_bytes=upload.size or 0)
    job.file.save(job.filename or "customers.csv", upload, save=False)
    job.save()
    job_id = job.pk

    def enqueue():
        from .tasks import import_customers_job  # noqa: PLC0415  (customers.tasks imports this module)

        import_customers_job.delay(job_id)

    transaction.on_commit(enqueue)
    return job


def _on_own_connection(work):
    """Run `work` in this tenant on a thread's own database connection, committed at once."""
    schema = connection.schema_name

    def run():
        try:
            with schema_context(schema):
                return work()
        finally:
            connections.close_all()  # this thread's connections only

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def customers_import_job(*, job_id):
    """Run a queued import, saving progress on its row after each chunk. Safe to run twice: a job
    that is no longer queued (a redelivered task) is left alone."""
    from .importer import ImportFileError, import_customers_csv  # noqa: PLC0415  (the importer imports this module through customers.outbox)

    claimed = ImportJob.objects.filter(pk=job_id, status="queued").update(
        status="running", started_at=timezone.now()
    )
    if claimed != 1:
        return None
    job = ImportJob.objects.get(pk=job_id)

    def progress(done, total, report):
        # On a connection of its own: a first load runs as one long transaction (importer), and the
        # admin's progress bar must move meanwhile.
        _on_own_connection(
            lambda: ImportJob.objects.filter(pk=job_id).update(
                processed_bytes=done,
                total_bytes=total,
                rows=report.created + report.updated + report.unchanged + report.failed + report.duplicates,
                created=report.created,
                updated=report.updated,
                unchanged=report.unchanged,
                failed=report.failed,
                resubscribes_ignored=report.resubscribes_ignored,
            )
        )

    try:
        with job.file.open("rb") as handle:
            report = import_customers_csv(path_or_file=handle, progress=progress)
    except ImportFileError as error:
        _import_file_discard(job)
        ImportJob.objects.filter(pk=job_id).update(
            status="failed", error=str(error), finished_at=timezone.now()
        )
        return None
    except Exception as error:
        _import_file_discard(job)
        ImportJob.objects.filter(pk=job_id).update(
            status="failed", error=f"The import stopped: {error}", finished_at=timezone.now()
        )
        raise
    ImportJob.objects.filter(pk=job_id).update(
        status="done",
        processed_bytes=job.total_bytes or 0,
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        failed=report.failed,
        resubscribes_ignored=report.resubscribes_ignored,
        errors=[list(error) for error in report.errors],
        finished_at=timezone.now(),
    )
    _import_file_discard(job)
    return report


def _import_file_discard(job):
    """An uploaded customer list is personal data: it is not kept once imported."""
    job.file.delete(save=False)
    ImportJob.objects.filter(pk=job.pk).update(file="")
