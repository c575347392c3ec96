"""The bulk endpoints' work: each item validated by the API's input serializer and applied by one
service, in a savepoint of its own, so one bad item does not sink the rest."""

from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.exceptions import ValidationError as DRFValidationError

from events.services import publisher_kicks_gathered

from . import hooks
from .attribution import orders_attribute
from .serializers import CustomerInputSerializer, OrderInputSerializer, ProductInputSerializer
from .services import customer_upsert, order_upsert, products_upsert


def _error_detail(error):
    if isinstance(error, DRFValidationError):
        return error.detail if isinstance(error.detail, dict) else {"non_field_errors": error.detail}
    return error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}


def _bulk(items, handle, *, then=None):
    """Apply `handle` to each item in a transaction of its own; `then(ids)` (optional) gets the ids of
    the items that went through, in one more transaction, for work done set-based over all of them."""
    results, counts = [], {"created": 0, "updated": 0, "unchanged": 0, "failed": 0}
    # The items' customers are noted for flows' segment triggers once, after the last item, not in
    # a statement per item (hooks.customers_changed_batch); the events publisher is kicked once too.
    with hooks.customers_changed_batch(), publisher_kicks_gathered():
        for index, item in enumerate(items):
            try:
                with transaction.atomic():
                    obj, status = handle(item)
            except (ValidationError, DRFValidationError) as error:
                results.append(
                    {"index": index, "status": "error", "id": None, "errors": _error_detail(error)}
                )
                counts["failed"] += 1
                continue
            results.append({"index": index, "status": status, "id": obj.pk})
            counts[status] += 1
        ids = [result["id"] for result in results if result["id"] is not None]
        if then is not None and ids:
            with transaction.atomic():
                then(ids)
    return {**counts, "results": results}


def customers_bulk_upsert(*, items):
    """Upsert up to 1000 customers, each on its own: one bad item does not sink the rest."""

    def handle(item):
        serializer = CustomerInputSerializer(data=item, partial=True)
        serializer.is_valid(raise_exception=True)
        return customer_upsert(data=serializer.validated_data, source="the bulk API")

    return _bulk(items, handle)


def orders_bulk_upsert(*, items):
    """Upsert up to 1000 orders, each on its own: one bad item does not sink the rest. The request's
    orders are attributed together after the last item: one statement instead of one per order (the
    orders of a request interrupted before that are attributed when the webshop delivers them again)."""

    def handle(item):
        serializer = OrderInputSerializer(data=item)
        serializer.is_valid(raise_exception=True)
        order, created = order_upsert(data=serializer.validated_data, attribute=False)
        return order, ("created" if created else "updated")

    return _bulk(items, handle, then=lambda ids: orders_attribute(order_ids=ids))


def products_bulk_upsert(*, items):
    """Upsert up to 1000 products by SKU: each item validated on its own (a bad one is reported and
    skipped, as is a SKU given twice), the valid ones written together (services.products_upsert)."""
    results, valid, seen = [], {}, set()
    for index, item in enumerate(items):
        serializer = ProductInputSerializer(data=item)
        if not serializer.is_valid():
            results.append({"index": index, "status": "error", "id": None, "errors": serializer.errors})
            continue
        sku = serializer.validated_data["sku"]
        if sku in seen:
            errors = {"sku": ["Twice in this request."]}
            results.append({"index": index, "status": "error", "id": None, "errors": errors})
            continue
        seen.add(sku)
        valid[index] = serializer.validated_data
        results.append(None)
    written = products_upsert(products=list(valid.values())) if valid else {}
    counts = {"created": 0, "updated": 0, "unchanged": 0, "failed": len(items) - len(valid)}
    for index, data in valid.items():
        product_id, created = written[data["sku"]]
        status = "created" if created else "updated"
        results[index] = {"index": index, "status": status, "id": product_id}
        counts[status] += 1
    return {**counts, "results": results}
