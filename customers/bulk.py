"""The bulk endpoints' work: each item validated by the API's input serializer and applied by one
service, in a savepoint of its own, so one bad item does not sink the rest."""

from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.exceptions import ValidationError as DRFValidationError

from .serializers import CustomerInputSerializer, OrderInputSerializer
from .services import customer_upsert, order_upsert


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

    def handle(item):
        serializer = CustomerInputSerializer(data=item, partial=True)
        serializer.is_valid(raise_exception=True)
        return customer_upsert(data=serializer.validated_data, source="the bulk API")

    return _bulk(items, handle)


def orders_bulk_upsert(*, items):
    """Upsert up to 1000 orders, each on its own: one bad item does not sink the rest."""

    def handle(item):
        serializer = OrderInputSerializer(data=item)
        serializer.is_valid(raise_exception=True)
        order, created = order_upsert(data=serializer.validated_data)
        return order, ("created" if created else "updated")

    return _bulk(items, handle)
