"""A fixed data set of customers for the segment tests, and a plain-Python evaluation of the rules
over it (the oracle the SQL compiler is checked against)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from campaigns.models import Campaign, CampaignRecipient
from customers.models import Customer, CustomerTag, Order, OrderItem, Tag

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def at(text):
    return datetime.fromisoformat(text)


# key: customer fields, plus tags, orders [(sku, status)], opened/clicked campaign keys.
CUSTOMERS = {
    "anna": dict(
        email="anna@example.com",
        first_name="Anna",
        last_name="Kovács",
        phone="+36 1 234 5678",
        city="Budapest",
        country="HU",
        attributes={"plan": "Gold", "score": 5},
        email_marketing=True,
        total_spent="1500.00",
        order_count=3,
        first_order_at=NOW - 400 * DAY,
        last_order_at=NOW - 10 * DAY,
        created_at=at("2024-03-01T10:00:00+00:00"),
        tags=["VIP", "newsletter"],
        orders=[("SKU-1", "paid"), ("SKU-2", "cancelled")],
        opened=["c1"],
        clicked=["c1"],
    ),
    "bela": dict(
        email="bela@example.com",
        first_name="Béla",
        last_name="Nagy",
        phone="",
        city="GYŐR",
        country="HU",
        attributes={"plan": "silver"},
        email_marketing=False,
        total_spent="200.00",
        order_count=1,
        first_order_at=NOW - 100 * DAY,
        last_order_at=NOW - 100 * DAY,
        created_at=at("2025-01-01T00:00:00+00:00"),
        tags=["newsletter"],
        orders=[("sku-2", "delivered")],
        opened=["c1"],
        clicked=[],
    ),
    "cecil": dict(
        email="cecil@example.net",
        first_name="Cecil",
        last_name="Győri",
        phone="+36 96 111",
        city="győr",
        country="HU",
        attributes={},
        email_marketing=True,
        total_spent="1000.00",
        order_count=2,
        first_order_at=NOW - 200 * DAY,
        last_order_at=NOW - 30 * DAY,
        created_at=at("2024-01-01T00:00:00+00:00"),
        tags=["VIP"],
        orders=[("SKU-3", "shipped")],
        opened=[],
        clicked=[],
    ),
    "dora": dict(
        email="dora@example.com",
        first_name="",
        last_name="",
        phone="",
        city="",
        country="",
        attributes={},
        email_marketing=False,
        total_spent="0.00",
        order_count=0,
        first_order_at=None,
        last_order_at=None,
        created_at=NOW - DAY,
        tags=[],
        orders=[],
        opened=[],
        clicked=[],
    ),
    "erik": dict(
        email="erik@sub.example.com",
        first_name="Erik",
        last_name="Szabó",
        phone="06-20-999",
        city="Szeged",
        country="HU",
        attributes={"plan": None, "score": "7"},
        email_marketing=True,
        total_spent="999.99",
        order_count=1,
        first_order_at=NOW - 30 * DAY - timedelta(seconds=1),
        last_order_at=NOW - 30 * DAY - timedelta(seconds=1),
        created_at=at("2024-01-31T00:00:00+00:00"),
        tags=["Gold"],
        orders=[("SKU-1", "refunded")],
        opened=["c2"],
        clicked=["c2"],
    ),
    "fanni": dict(
        email="fanni@example.org",
        first_name="Fanni",
        last_name="Tóth",
        phone="+36 1 999",
        city="budapest",
        country="AT",
        attributes={"plan": "gold", "note": "50%_off"},
        email_marketing=True,
        total_spent="2500.50",
        order_count=5,
        first_order_at=NOW - 1000 * DAY,
        last_order_at=NOW - timedelta(hours=1),
        created_at=at("2023-12-31T23:59:59+00:00"),
        tags=["newsletter", "VIP"],
        orders=[("Sku-3", "paid"), ("sku-4", "pending")],
        opened=[],
        clicked=[],
    ),
    "gabor": dict(  # erased: matches nothing, not even `null` rules
        email=None,
        first_name="",
        last_name="",
        phone="",
        city="Budapest",
        country="",
        attributes={},
        email_marketing=False,
        total_spent="5000.00",
        order_count=9,
        first_order_at=NOW - 50 * DAY,
        last_order_at=NOW - 5 * DAY,
        created_at=at("2024-05-05T00:00:00+00:00"),
        tags=["VIP"],
        orders=[("SKU-1", "paid")],
        opened=["c1"],
        clicked=["c1"],
        erased_at=NOW - 2 * DAY,
    ),
    "hanna": dict(
        email="hanna@example.com",
        first_name="Hanna",
        last_name="Kiss",
        phone="+36 30 555",
        city="Debrecen",
        country="HU",
        attributes={"note": "50% off", "plan": ""},
        email_marketing=False,
        total_spent="1000.01",
        order_count=1,
        first_order_at=NOW - 365 * DAY,
        last_order_at=NOW - 365 * DAY,
        created_at=at("2024-06-01T12:00:00+00:00"),
        tags=[],
        orders=[("SKU-1", "refunded"), ("SKU-5", "cancelled")],
        opened=["c2"],
        clicked=[],
    ),
    "ivan": dict(
        email="ivan@example.com",
        first_name="Iván",
        last_name="O'Brien",
        phone="",
        city="Pécs",
        country="DE",
        attributes={"plan": "Platinum"},
        email_marketing=True,
        total_spent="50.00",
        order_count=1,
        first_order_at=NOW - 5 * DAY,
        last_order_at=NOW - 5 * DAY,
        created_at=NOW - timedelta(hours=1),
        tags=["newsletter"],
        orders=[("sku-1", "paid")],
        opened=[],
        clicked=[],
    ),
}
COUNTING = ("pending", "paid", "shipped", "delivered")


@dataclass
class Dataset:
    ids: dict  # key -> customer id
    campaigns: dict  # key -> campaign id
    keys_by_id: dict = field(default_factory=dict)

    def keys(self, queryset):
        return {self.keys_by_id[pk] for pk in queryset.values_list("id", flat=True)}

    @property
    def universe(self):
        return {key for key, spec in CUSTOMERS.items() if not spec.get("erased_at")}


@pytest.fixture
def dataset(tenant):
    campaigns = {key: Campaign.objects.create(name=f"Campaign {key}").id for key in ("c1", "c2")}
    tags = {}
    ids = {}
    for key, spec in CUSTOMERS.items():
        spec = dict(spec)
        tag_names, orders = spec.pop("tags"), spec.pop("orders")
        opened, clicked = spec.pop("opened"), spec.pop("clicked")
        customer = Customer.objects.create(external_id=f"ext-{key}", **spec)
        ids[key] = customer.id
        for name in tag_names:
            if name.lower() not in tags:
                tags[name.lower()] = Tag.objects.create(name=name)
            CustomerTag.objects.create(customer=customer, tag=tags[name.lower()])
        for index, (sku, status) in enumerate(orders):
            order = Order.objects.create(
                external_id=f"{key}-{index}", customer=customer, status=status, total=Decimal("10.00")
            )
            OrderItem.objects.create(order=order, sku=sku, quantity=1, unit_price=Decimal("10.00"))
        for campaign in set(opened) | set(clicked):
            CampaignRecipient.objects.create(
                campaign_id=campaigns[campaign],
                customer=customer,
                email=spec["email"] or f"{key}@erased.invalid",
                first_opened_at=NOW if campaign in opened else None,
                first_clicked_at=NOW if campaign in clicked else None,
            )
    return Dataset(ids=ids, campaigns=campaigns, keys_by_id={pk: key for key, pk in ids.items()})


# --- the oracle: PRODUCT.md's semantics in plain Python ------------------------------------------
NEGATIVE = {
    "!=": "=",
    "doesNotContain": "contains",
    "doesNotBeginWith": "beginsWith",
    "doesNotEndWith": "endsWith",
    "notIn": "in",
    "notBetween": "between",
    "notInLastDays": "inLastDays",
    "notNull": "null",
}
TEXT_FIELDS = {"email", "first_name", "last_name", "phone", "city", "country"}
NUMBER_FIELDS = {"total_spent", "order_count"}
DATE_FIELDS = {"created_at", "first_order_at", "last_order_at"}


def _items(value):
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value)


def _text_of(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _date(value):
    text = str(value).strip()
    if len(text) == 10:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    return datetime.fromisoformat(text)


def _members(key, field_name, campaigns):
    spec = CUSTOMERS[key]
    if field_name == "tags":
        return {name.lower() for name in spec["tags"]}
    if field_name == "purchased_sku":
        return {sku.lower() for sku, status in spec["orders"] if status in COUNTING}
    source = spec["opened"] if field_name == "opened_campaign" else spec["clicked"]
    return {campaigns[name] for name in source}


def evaluate(node, key, campaigns, now=NOW):
    """Does customer `key` match the rule tree? (erased customers are filtered by the caller)."""
    if "rules" in node:
        results = [evaluate(child, key, campaigns, now) for child in node["rules"]]
        matched = all(results) if node["combinator"].lower() == "and" else any(results)
        return not matched if node.get("not") else matched
    operator = node["operator"]
    if operator in NEGATIVE:
        return not _positive(node["field"], NEGATIVE[operator], node.get("value"), key, campaigns, now)
    return _positive(node["field"], operator, node.get("value"), key, campaigns, now)


def _positive(field_name, operator, value, key, campaigns, now):
    spec = CUSTOMERS[key]
    if field_name in TEXT_FIELDS or field_name.startswith("attributes."):
        if field_name.startswith("attributes."):
            actual = _text_of(spec["attributes"].get(field_name[len("attributes.") :]))
        else:
            actual = spec[field_name]
        missing = actual is None or actual == ""
        if operator == "null":
            return missing
        if missing:
            return False
        actual = actual.lower()
        if operator == "in":
            return actual in {item.lower() for item in _items(value)}
        wanted = str(value).strip().lower()
        return {
            "=": actual == wanted,
            "contains": wanted in actual,
            "beginsWith": actual.startswith(wanted),
            "endsWith": actual.endswith(wanted),
        }[operator]
    if field_name in NUMBER_FIELDS:
        actual = Decimal(str(spec[field_name]))
        if operator == "in":
            return actual in {Decimal(str(item)) for item in _items(value)}
        if operator == "between":
            low, high = sorted(Decimal(str(item)) for item in _items(value))
            return low <= actual <= high
        wanted = Decimal(str(value).strip())
        return {
            "=": actual == wanted,
            "<": actual < wanted,
            ">": actual > wanted,
            "<=": actual <= wanted,
            ">=": actual >= wanted,
        }[operator]
    if field_name in DATE_FIELDS:
        actual = spec[field_name]
        if operator == "null":
            return actual is None
        if actual is None:
            return False
        if operator == "inLastDays":
            return actual >= now - int(str(value).strip()) * DAY
        if operator == "between":
            low, high = sorted(_date(item) for item in _items(value))
            return low <= actual <= high
        wanted = _date(value)
        return {"<": actual < wanted, ">": actual > wanted, "<=": actual <= wanted, ">=": actual >= wanted}[
            operator
        ]
    if field_name == "email_marketing":
        wanted = value if isinstance(value, bool) else str(value).strip().lower() == "true"
        return spec["email_marketing"] == wanted
    members = _members(key, field_name, campaigns)
    if operator == "null":
        return not members
    if field_name in ("opened_campaign", "clicked_campaign"):
        wanted = {int(str(item).strip()) for item in _items(value)} if operator == "in" else {int(value)}
    else:
        wanted = (
            {item.lower() for item in _items(value)} if operator == "in" else {str(value).strip().lower()}
        )
    return bool(members & wanted)
