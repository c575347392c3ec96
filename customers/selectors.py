"""Reads: customer lists (search, filters), histories, CSV export rows."""

import csv
import json
import logging
import re

from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, IntegerField, OuterRef, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower

from .models import Customer, CustomerTag, Interaction, Order, Tag
from .spreadsheet import guard

logger = logging.getLogger(__name__)

# The exact expression of the trigram index (migration 0002): searching through it lets PostgreSQL
# answer `?search=` from the index at a million customers instead of scanning the table.
SEARCH_SQL = "lower(COALESCE(email, '') || ' ' || first_name || ' ' || last_name || ' ' || phone)"
MAX_SEARCH_WORDS = 8


def customer_list():
    return Customer.objects.prefetch_related("tags", "addresses")


def customer_get(*, pk):
    return customer_list().get(pk=pk)


# Trigrams found in more than this share of a tenant's customers are not worth asking the index for.
FREQUENT_TRIGRAM_SHARE = 0.02
TRIGRAM_SAMPLE_ROWS = 3000
# Below this many customers every search is fast as it is: no sampling.
TRIGRAM_SAMPLE_ABOVE = 50_000
TRIGRAM_STATS_SECONDS = 6 * 3600


def customers_search(queryset, *, term):
    """Customers whose email, name ("first last") or phone contain every word of `term`, ignoring case.

    A word made mostly of trigrams that most customers share ("customer", "gmail", "com") makes the
    trigram index read posting lists as long as the table. Such a word asks the index only for its
    rarest piece and is then checked whole on the few rows found: `LIKE '%r7777%'` through the index
    plus `strpos(..., 'customer7777') > 0` on its matches reads 1 ms of index instead of 20 ms at a
    million customers, with exactly the same result (the piece is part of the word).
    """
    words = term.lower().split()[:MAX_SEARCH_WORDS]
    if not words:
        return queryset
    queryset = queryset.alias(search_document=RawSQL(SEARCH_SQL, (), output_field=TextField()))
    frequent = None
    for position, word in enumerate(words):
        piece = word
        if len(word) > 3:
            if frequent is None:
                frequent = frequent_search_trigrams()
            piece = rare_piece(word, frequent)
        queryset = queryset.filter(search_document__contains=piece)
        if piece != word:
            name = f"search_word_{position}"
            check = RawSQL(f"strpos({SEARCH_SQL}, %s)", (word,), output_field=IntegerField())
            queryset = queryset.alias(**{name: check}).filter(**{f"{name}__gt": 0})
    return queryset


def rare_piece(word, frequent):
    """The longest part of `word` whose trigrams are all rare, or `word` itself when it has no frequent
    trigram or no rare one. Only ASCII letters and digits are cut (where pg_trgm's words and ours
    surely agree); any part of the word is a correct, only less selective, index condition."""
    if not frequent:
        return word
    best, best_count, any_frequent = word, 0, False
    for run in re.finditer(r"[a-z0-9]{3,}", word):
        text = run.group()
        rare = [text[i : i + 3] not in frequent for i in range(len(text) - 2)]
        any_frequent = any_frequent or not all(rare)
        start = None
        for i, ok in enumerate([*rare, False]):
            if ok and start is None:
                start = i
            elif not ok and start is not None:
                if i - start > best_count:
                    best, best_count = text[start : i + 2], i - start
                start = None
    return best if any_frequent and best_count else word


def customers_estimate() -> float:
    """The planner's row count of the tenant's customers (pg_class, kept by ANALYZE): no rows read;
    0 for a table never analysed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [Customer._meta.db_table])
        row = cursor.fetchone()
    return max(row[0], 0) if row else 0


def frequent_search_trigrams():
    """The trigrams of the search text that more than FREQUENT_TRIGRAM_SHARE of this tenant's customers
    share, from a sample of TRIGRAM_SAMPLE_ROWS rows, cached (per tenant) for TRIGRAM_STATS_SECONDS."""
    cached = cache.get("customers:frequent-trigrams")
    if cached is not None:
        return frozenset(cached)
    table = Customer._meta.db_table
    trigrams = []
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            estimate = customers_estimate()
            if estimate > TRIGRAM_SAMPLE_ABOVE:
                # SYSTEM sampling reads whole pages spread over the table: a few milliseconds.
                cursor.execute(
                    f"""
                    WITH sample AS (
                        SELECT {SEARCH_SQL} AS doc FROM {table} TABLESAMPLE SYSTEM (%s) REPEATABLE (0) LIMIT %s
                    ), total AS (SELECT count(*) AS n FROM sample)
                    SELECT t FROM sample CROSS JOIN LATERAL unnest(show_trgm(doc)) AS t, total
                     GROUP BY t, total.n HAVING count(*) > total.n * %s
                    """,
                    [
                        min(100.0, 100.0 * TRIGRAM_SAMPLE_ROWS / estimate),
                        TRIGRAM_SAMPLE_ROWS * 2,
                        FREQUENT_TRIGRAM_SHARE,
                    ],
                )
                trigrams = [t for (t,) in cursor.fetchall() if re.fullmatch(r"[a-z0-9]{3}", t)]
    except DatabaseError:  # no pg_trgm on this server: there is no trigram index to spare either
        logger.warning("customer search: no trigram statistics", exc_info=True)
    cache.set("customers:frequent-trigrams", trigrams, TRIGRAM_STATS_SECONDS)
    return frozenset(trigrams)


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
    return (
        Order.objects.filter(customer=customer)
        .select_related("attribution")
        .prefetch_related("items")
        .order_by("-placed_at", "-id")
    )


def customer_activity(*, customer):
    return (
        Interaction.objects.filter(customer=customer).select_related("author").order_by("-occurred_at", "-id")
    )


PROFILE_ORDERS = 5
PROFILE_TIMELINE = 50
CONSENT_KINDS = ("unsubscribed", "resubscribed", "preferences", "resubscribe_ignored")


def customer_consent_state(customer):
    """'subscribed', 'unsubscribed' or 'no_consent': what a marketer needs to know first."""
    if customer.unsubscribed_at is not None:
        return "unsubscribed"
    return "subscribed" if customer.email_marketing else "no_consent"


def customer_profile(*, customer):
    """The customer page's story: consent with its history, the latest orders, the activity (a few
    indexed reads: interaction_customer_time, the orders' customer index)."""
    activity = [
        {
            "at": item.occurred_at,
            "kind": item.kind,
            "label": item.get_kind_display(),
            "body": item.body,
            "author": item.author.get_username() if item.author_id else "",
            "url": "",
        }
        for item in customer_activity(customer=customer)[:PROFILE_TIMELINE]
    ]
    return {
        "consent": customer_consent_state(customer),
        "consent_history": list(customer_activity(customer=customer).filter(kind__in=CONSENT_KINDS)[:10]),
        "orders": list(
            Order.objects.filter(customer=customer).order_by("-placed_at", "-id")[:PROFILE_ORDERS]
        ),
        "tags": list(customer.tags.order_by("name").values_list("name", flat=True)),
        "timeline": activity,
    }


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
    # A spreadsheet would run a cell starting like a formula (CSV injection): spreadsheet.guard.
    return guard(str(value))


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
