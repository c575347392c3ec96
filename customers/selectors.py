"""Reads: customer lists (search, filters), histories, CSV export rows."""

import csv
import json

from django.db.models import Exists, OuterRef, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower

from .models import Customer, CustomerTag, Interaction, Order, Tag

# The exact expression of the trigram index (migration 0002): searching through it lets PostgreSQL
# answer `?search=` from the index at a million customers instead of scanning the table.
SEARCH_SQL = "lower(COALESCE(email, '') || ' ' || first_name || ' ' || last_name || ' ' || phone)"
MAX_SEARCH_WORDS = 8


def customer_list():
    return Customer.objects.prefetch_related("tags", "addresses")


def customer_get(*, pk):
    return customer_list().get(pk=pk)


def customers_search(queryset, *, term):
    """Customers whose email, name ("first last") or phone contain every word of `term`, ignoring case."""
    words = term.lower().split()[:MAX_SEARCH_WORDS]
    if not words:
        return queryset
    queryset = queryset.alias(search_document=RawSQL(SEARCH_SQL, (), output_field=TextField()))
    for word in words:
        queryset = queryset.filter(search_document__contains=word)
    return queryset


def tag_ids_named(*, names):
    """{lower-case name: id} of the existing tags with these names, ignoring case."""
    lowered = [name.strip().lower() for name in names if name and name.strip()]
    return dict(
        Tag.objects.annotate(lname=Lower("name")).filter(lname__in=lowered).values_list("lname", "id")
    )


def customers_with_tags(queryset, *, names):
    """Customers having every one of these tags (names, any case)."""
    wanted = {name.strip().lower() for name in names if name.strip()}
    found = tag_ids_named(names=wanted)
    if len(found) < len(wanted):
        return queryset.none()
    for tag_id in found.values():
        queryset = queryset.filter(Exists(CustomerTag.objects.filter(customer=OuterRef("pk"), tag_id=tag_id)))
    return queryset


def customers_in_city(queryset, *, city):
    # Lower(city) is what the customer_city_lower index holds.
    return queryset.alias(city_lower=Lower("city")).filter(city_lower=city.strip().lower())


def customers_in_country(queryset, *, country):
    return queryset.alias(country_lower=Lower("country")).filter(country_lower=country.lower())


def customer_orders(*, customer):
    return Order.objects.filter(customer=customer).prefetch_related("items").order_by("-placed_at", "-id")


def customer_activity(*, customer):
    return (
        Interaction.objects.filter(customer=customer).select_related("author").order_by("-occurred_at", "-id")
    )


# --- CSV export -----------------------------------------------------------------------------------

CSV_COLUMNS = [
    "id",
    "external_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "city",
    "country",
    "tags",
    "email_marketing",
    "email_transactional",
    "unsubscribed_at",
    "total_spent",
    "order_count",
    "first_order_at",
    "last_order_at",
    "created_at",
    "updated_at",
    "attributes",
]
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value):
        return value


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    value = str(value)
    # A spreadsheet would run a cell starting like a formula (CSV injection): make it text.
    if value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def customers_csv_rows(queryset, *, chunk_size=2000):
    """CSV lines (header first) for every customer of the queryset, streamed in chunks (flat memory)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    tag_names = dict(Tag.objects.values_list("id", "name"))
    fields = [c for c in CSV_COLUMNS if c not in ("tags",)]
    rows = queryset.order_by("id").values_list(*fields)
    batch = []
    for row in rows.iterator(chunk_size=chunk_size):
        batch.append(row)
        if len(batch) >= chunk_size:
            yield from _csv_batch(writer, batch, fields, tag_names)
            batch = []
    if batch:
        yield from _csv_batch(writer, batch, fields, tag_names)


def _csv_batch(writer, batch, fields, tag_names):
    ids = [row[0] for row in batch]
    tags = {}
    for customer_id, tag_id in CustomerTag.objects.filter(customer_id__in=ids).values_list(
        "customer_id", "tag_id"
    ):
        tags.setdefault(customer_id, []).append(tag_names.get(tag_id, ""))
    for row in batch:
        record = dict(zip(fields, row, strict=True))
        record["tags"] = ", ".join(sorted(tags.get(record["id"], []), key=str.lower))
        record["attributes"] = (
            json.dumps(record["attributes"], ensure_ascii=False) if record["attributes"] else ""
        )
        yield writer.writerow(
            [_cell(record[column]) if column != "id" else record["id"] for column in CSV_COLUMNS]
        )
