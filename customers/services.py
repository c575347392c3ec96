"""Every write to customers, their tags, addresses, orders and activity goes through here.

Services take validated data (see customers.serializers: CustomerInputSerializer, OrderInputSerializer),
run in one transaction, emit their domain event inside it and call the higher apps' hooks after commit.
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from rest_framework.exceptions import ValidationError as DRFValidationError

from events.models import OutboxEvent
from events.services import event_emit

from . import hooks, selectors
from .models import (
    NON_COUNTING_ORDER_STATUSES,
    Address,
    Customer,
    CustomerTag,
    Interaction,
    Order,
    OrderItem,
    Tag,
)

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
ADDRESS_FIELDS = ("kind", "line1", "line2", "city", "postal_code", "country", "is_default")
ORDER_INTERACTION_KINDS = ("order_placed", "order_status")


# --- customers ------------------------------------------------------------------------------------


def customer_payload(*, customer_id):
    """The customer exactly as GET /api/customers/{id} returns it (the `data` of customer.* events)."""
    # The representation has one definition, the API's serializer; events must match it byte for byte.
    from .serializers import CustomerSerializer

    customer = Customer.objects.prefetch_related("tags", "addresses").get(pk=customer_id)
    return dict(CustomerSerializer(customer).data)


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
        if tags:
            _tags_set(customer, tags)
        if addresses:
            _addresses_set(customer, addresses)
        event_emit(type="customer.created", data=customer_payload(customer_id=customer.pk))
    return customer


def customer_update(*, customer, data, author=None):
    """Apply validated data (partial or complete) to a customer. Returns (customer, changed_fields)."""
    data = dict(data)
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            raise ValidationError({"non_field_errors": ["This customer's personal data was erased."]})
        _unique_check(email=data.get("email"), external_id=data.get("external_id"), exclude_id=customer.pk)
        before = customer_payload(customer_id=customer.pk)
        # Opting in to marketing again lifts an earlier unsubscribe, unless the client says otherwise.
        if data.get("email_marketing") and not customer.email_marketing and "unsubscribed_at" not in data:
            data["unsubscribed_at"] = None
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
    return customer, changed


def customer_upsert(*, data):
    """Create or update by external_id, else by email. `data` is CustomerInputSerializer(partial=True)
    validated data. Returns (customer, status) with status 'created', 'updated' or 'unchanged'."""
    customer = None
    if data.get("external_id"):
        customer = Customer.objects.filter(external_id=data["external_id"]).first()
    if customer is None and data.get("email"):
        customer = Customer.objects.filter(email=data["email"]).first()
    if customer is None:
        if not data.get("email"):
            raise ValidationError({"email": ["This field is required to create a customer."]})
        from .serializers import CustomerInputSerializer

        try:
            return customer_create(data={**CustomerInputSerializer.DEFAULTS, **data}), "created"
        except ValidationError:
            # Lost a race with a concurrent create of the same customer: update that one instead.
            customer = Customer.objects.filter(email=data["email"]).first()
            if customer is None:
                raise
    customer, changed = customer_update(customer=customer, data=data)
    return customer, ("updated" if changed else "unchanged")


def customer_erase(*, customer):
    """GDPR erasure: the row stays (orders and history keep their customer) without personal data.

    Cleared: email (NULL), external_id, names, phone, city, country, attributes, consent, addresses and
    tags (a tag can say as much about a person as a note). Orders and their items are kept (no PII);
    interactions are kept with their bodies cleared, and their data cleared except for order references.
    The customer's PII is scrubbed from this tenant's outbox events and from campaign recipients.
    """
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            return customer
        before = customer_payload(customer_id=customer.pk)
        customer.addresses.all().delete()
        CustomerTag.objects.filter(customer=customer).delete()
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
        _outbox_scrub(customer_id=customer.pk)
        # Higher apps scrub their copies (recipients' addresses, tracking hits) in this transaction.
        hooks.run_in_transaction(hooks.customer_erased, customer_id=customer.pk)
        Interaction.objects.create(
            customer=customer, kind="erased", body="Personal data erased.", occurred_at=now
        )
        after = customer_payload(customer_id=customer.pk)
        event_emit(type="customer.updated", data={**after, "changed": _changed(before, after)})
    customer.refresh_from_db()
    return customer


def _outbox_scrub(*, customer_id):
    tenant_events = OutboxEvent.objects.filter(tenant=connection.schema_name)
    tenant_events.filter(type__startswith="customer.", data__id=customer_id).update(
        data={"id": customer_id, "erased": True}
    )
    with connection.cursor() as cursor:
        # email.* and other events name the customer as customer_id / customer and may carry the email.
        cursor.execute(
            f"UPDATE {OutboxEvent._meta.db_table} SET data = data - 'email' - 'customer_email' "
            "WHERE tenant = %s AND NOT type LIKE 'customer.%%' "
            "AND (data->>'customer_id' = %s OR data->>'customer' = %s)",
            [connection.schema_name, str(customer_id), str(customer_id)],
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
    return len(touched)


def _emit_updated(*, customer_ids, changed, batch=500):
    from .serializers import CustomerSerializer

    for start in range(0, len(customer_ids), batch):
        chunk = customer_ids[start : start + batch]
        for customer in Customer.objects.filter(pk__in=chunk).prefetch_related("tags", "addresses"):
            event_emit(
                type="customer.updated", data={**CustomerSerializer(customer).data, "changed": changed}
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
    from .serializers import CustomerInputSerializer

    fields = {**CustomerInputSerializer.DEFAULTS, "email": email}
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


def order_upsert(*, data):
    """Record an order pushed by the webshop, idempotent by external_id. Returns (order, created).

    `data` is OrderInputSerializer validated data. Re-delivery updates the order (status, totals,
    items); the customer's aggregates are recomputed under its row lock either way.
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
        elif old_status != order.status:
            _order_status_interaction(order, old_status)
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


# --- bulk -----------------------------------------------------------------------------------------


def _error_detail(error):
    if isinstance(error, DRFValidationError):
        return error.detail if isinstance(error.detail, dict) else {"non_field_errors": error.detail}
    return error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}


def _bulk(items, handle):
    results, counts = [], {"created": 0, "updated": 0, "unchanged": 0, "failed": 0}
    for index, item in enumerate(items):
        try:
            with transaction.atomic():
                obj, status = handle(item)
        except (ValidationError, DRFValidationError) as error:
            results.append({"index": index, "status": "error", "id": None, "errors": _error_detail(error)})
            counts["failed"] += 1
            continue
        results.append({"index": index, "status": status, "id": obj.pk})
        counts[status] += 1
    return {**counts, "results": results}


def customers_bulk_upsert(*, items):
    """Upsert up to 1000 customers, each on its own: one bad item does not sink the rest."""
    from .serializers import CustomerInputSerializer

    def handle(item):
        serializer = CustomerInputSerializer(data=item, partial=True)
        serializer.is_valid(raise_exception=True)
        return customer_upsert(data=serializer.validated_data)

    return _bulk(items, handle)


def orders_bulk_upsert(*, items):
    """Upsert up to 1000 orders, each on its own: one bad item does not sink the rest."""
    from .serializers import OrderInputSerializer

    def handle(item):
        serializer = OrderInputSerializer(data=item)
        serializer.is_valid(raise_exception=True)
        order, created = order_upsert(data=serializer.validated_data)
        return order, ("created" if created else "updated")

    return _bulk(items, handle)


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
    from .models import ImportJob

    job = ImportJob(filename=getattr(upload, "name", "") or "", created_by=user, total_bytes=upload.size or 0)
    job.file.save(job.filename or "customers.csv", upload, save=False)
    job.save()
    job_id = job.pk

    def enqueue():
        from .tasks import import_customers_job

        import_customers_job.delay(job_id)

    transaction.on_commit(enqueue)
    return job


def _on_own_connection(work):
    """Run `work` in this tenant on a thread's own database connection, committed at once."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections
    from django_tenants.utils import schema_context

    schema = connection.schema_name

    def run():
        try:
            with schema_context(schema):
                return work()
        finally:
            connections.close_all()  # this thread's connections only

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def import_job_run(*, job_id):
    """Run a queued import, saving progress on its row after each chunk. Safe to run twice: a job
    that is no longer queued (a redelivered task) is left alone."""
    from .importer import ImportFileError, import_customers_csv
    from .models import ImportJob

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
        errors=[list(error) for error in report.errors],
        finished_at=timezone.now(),
    )
    _import_file_discard(job)
    return report


def _import_file_discard(job):
    """An uploaded customer list is personal data: it is not kept once imported."""
    from .models import ImportJob

    job.file.delete(save=False)
    ImportJob.objects.filter(pk=job.pk).update(file="")
