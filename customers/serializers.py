"""Shapes of the customers API: strict input serializers (reused by the events consumer) and the
output representations (also the `data` of customer.* events)."""

import json

from django.core.serializers.json import DjangoJSONEncoder
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import values

from .attribution import attribution_payload
from .countries import country_normalize
from .models import Address, Customer, Interaction, Order, OrderAttribution, OrderItem, Product
from .services import CUSTOMER_DEFAULTS

NOTE_KIND_CHOICES = [
    (kind, label) for kind, label in Interaction.KIND_CHOICES if kind in Interaction.USER_KINDS
]
MAX_BULK_ITEMS = 1000
MAX_TAGS = 100
MAX_ADDRESSES = 20
MAX_ORDER_ITEMS = 500
MAX_ATTRIBUTES_CHARS = 16_384


def email_normalize(value):
    """Trimmed, lower-case and valid (core.values), or a ValidationError naming the value."""
    try:
        return values.email_normalize(value)
    except ValueError as error:
        raise serializers.ValidationError(str(error))


def _find_nul(value, path=""):
    """The path of the first string (or object key) holding a NUL character, else None."""
    if isinstance(value, str):
        return path or "value" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                return f"{path}.{key!r}" if path else repr(key)
            found = _find_nul(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_nul(item, f"{path}[{index}]")
            if found:
                return found
    return None


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (a typo must not be silently dropped).

    `ignored_fields` are read-only fields of the representation: a client may PUT back what it GOT.
    """

    ignored_fields = frozenset()

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Expected a JSON object, got {type(data).__name__}."]}
            )
        unknown = sorted(set(data) - set(self.fields) - set(self.ignored_fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class TextField(serializers.CharField):
    """Trimmed text where null means empty: stored as '' when missing."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        if data is None:
            return ""
        return super().run_validation(data)


class CountryField(TextField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 20)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return country_normalize(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error))


class EmailField(serializers.CharField):
    def to_internal_value(self, data):
        return email_normalize(super().to_internal_value(data))


class AttributesField(serializers.JSONField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise serializers.ValidationError("Attributes are a JSON object.")
        nul = _find_nul(value)
        if nul:
            raise serializers.ValidationError(f"NUL characters are not allowed (at {nul}).")
        if len(json.dumps(value, cls=DjangoJSONEncoder)) > MAX_ATTRIBUTES_CHARS:
            raise serializers.ValidationError(f"Attributes take at most {MAX_ATTRIBUTES_CHARS} characters.")
        return value


class TagNameField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 100)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        name = super().to_internal_value(data)
        if "," in name:
            raise serializers.ValidationError("A tag name cannot contain a comma.")
        return name


class TagListField(serializers.ListField):
    def __init__(self, **kwargs):
        kwargs.setdefault("child", TagNameField())
        kwargs.setdefault("max_length", MAX_TAGS)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        names = super().to_internal_value(data)
        unique = {}
        for name in names:
            unique.setdefault(name.lower(), name)
        return list(unique.values())


# --- input ------------------------------------------------------------------------------------------


class AddressInputSerializer(StrictSerializer):
    ignored_fields = frozenset({"id"})

    kind = serializers.ChoiceField(choices=Address.KIND_CHOICES)
    line1 = serializers.CharField(max_length=255)
    line2 = TextField(max_length=255)
    city = TextField(max_length=150)
    postal_code = TextField(max_length=20)
    country = CountryField()
    is_default = serializers.BooleanField(required=False, default=False)


class CustomerInputSerializer(StrictSerializer):
    """A customer as clients write it. Partial (PATCH, upsert) or complete (POST, PUT)."""

    ignored_fields = frozenset(
        {"id", "total_spent", "order_count", "first_order_at", "last_order_at", "created_at", "updated_at"}
    )

    external_id = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    email = EmailField(max_length=320)
    first_name = TextField(max_length=150)
    last_name = TextField(max_length=150)
    phone = TextField(max_length=50)
    city = TextField(max_length=150)
    country = CountryField()
    tags = TagListField(required=False)
    attributes = AttributesField(required=False)
    email_marketing = serializers.BooleanField(required=False)
    email_transactional = serializers.BooleanField(required=False)
    unsubscribed_at = serializers.DateTimeField(required=False, allow_null=True)
    addresses = AddressInputSerializer(many=True, required=False, max_length=MAX_ADDRESSES)

    DEFAULTS = CUSTOMER_DEFAULTS

    def validate_external_id(self, value):
        value = (value or "").strip()
        return value or None

    def validate_addresses(self, addresses):
        defaults = {}
        for index, address in enumerate(addresses):
            if address["is_default"]:
                if address["kind"] in defaults:
                    raise serializers.ValidationError(
                        f"addresses[{index}]: only one default {address['kind']} address."
                    )
                defaults[address["kind"]] = index
        return addresses

    def complete(self):
        """validated_data with the defaults of every field it does not mention (for POST and PUT)."""
        return {**self.DEFAULTS, **self.validated_data}


class OrderItemInputSerializer(StrictSerializer):
    ignored_fields = frozenset({"id"})

    sku = serializers.CharField(max_length=100)
    name = TextField(max_length=255)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False, default=1)
    unit_price = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, required=False, default=0
    )


class OrderInputSerializer(StrictSerializer):
    """An order as the webshop pushes it (POST /api/orders, the bulk endpoint, the events consumer)."""

    ignored_fields = frozenset({"id", "created_at", "updated_at"})

    external_id = serializers.CharField(max_length=255)
    customer = serializers.IntegerField(required=False, min_value=1)
    customer_email = EmailField(max_length=320, required=False)
    customer_external_id = serializers.CharField(max_length=255, required=False)
    number = TextField(max_length=100)
    status = serializers.ChoiceField(choices=Order.STATUS_CHOICES, required=False, default="pending")
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$",
        required=False,
        default="HUF",
        error_messages={"invalid": "A currency is a 3-letter ISO 4217 code."},
    )
    total = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)
    placed_at = serializers.DateTimeField(required=False)
    items = OrderItemInputSerializer(many=True, required=False, max_length=MAX_ORDER_ITEMS)

    def validate_currency(self, value):
        return value.upper()

    def validate(self, attrs):
        if not any(attrs.get(key) for key in ("customer", "customer_email", "customer_external_id")):
            raise serializers.ValidationError(
                {"customer": ["Give `customer` (an id), `customer_email` or `customer_external_id`."]}
            )
        if "total" not in attrs:
            if not attrs.get("items"):
                raise serializers.ValidationError({"total": ["This field is required (or give items)."]})
            attrs["total"] = sum(item["quantity"] * item["unit_price"] for item in attrs["items"])
            if attrs["total"] >= 10**12:
                raise serializers.ValidationError(
                    {"total": ["The items add up to more than 999999999999.99."]}
                )
        return attrs


class OrderStatusInputSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=Order.STATUS_CHOICES)


class InteractionInputSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=NOTE_KIND_CHOICES)
    body = serializers.CharField(max_length=20_000)
    occurred_at = serializers.DateTimeField(required=False)
    data = AttributesField(required=False)


# --- output -----------------------------------------------------------------------------------------


class AddressSerializer(serializers.ModelSerializer):
    class Meta:
        model = Address
        fields = ["id", "kind", "line1", "line2", "city", "postal_code", "country", "is_default"]


class CustomerSerializer(serializers.ModelSerializer):
    """A customer as GET /api/customers/{id} returns it, and as customer.* events carry it."""

    tags = serializers.SerializerMethodField()
    addresses = AddressSerializer(many=True, read_only=True)

    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "email",
            "first_name",
            "last_name",
            "phone",
            "city",
            "country",
            "tags",
            "attributes",
            "email_marketing",
            "email_transactional",
            "unsubscribed_at",
            "addresses",
            "total_spent",
            "order_count",
            "first_order_at",
            "last_order_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_tags(self, customer) -> list[str]:
        # Sorted in Python so a prefetch (lists) and a fresh query (events) give the same order.
        return sorted((tag.name for tag in customer.tags.all()), key=str.lower)


class OrderItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderItem
        fields = ["id", "sku", "name", "quantity", "unit_price"]


class OrderAttributionSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(allow_null=True, help_text="The campaign credited, or null.")
    flow = serializers.IntegerField(allow_null=True, help_text="The flow credited, or null.")
    step = serializers.CharField(allow_null=True, help_text="The flow step's id, or null.")
    touch = serializers.ChoiceField(choices=["click", "open"])
    touched_at = serializers.DateTimeField()


class OrderSerializer(serializers.ModelSerializer):
    items = OrderItemSerializer(many=True, read_only=True)
    attribution = serializers.SerializerMethodField(
        help_text="The email touch the order is credited to (last click in the click window, else last "
        "human open in the open window), or null."
    )

    @extend_schema_field(OrderAttributionSerializer(allow_null=True))
    def get_attribution(self, order):
        try:
            attribution = order.attribution
        except OrderAttribution.DoesNotExist:
            return None
        return OrderAttributionSerializer(attribution_payload(attribution)).data

    class Meta:
        model = Order
        fields = [
            "id",
            "external_id",
            "customer",
            "number",
            "status",
            "currency",
            "total",
            "placed_at",
            "items",
            "attribution",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class InteractionSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()

    class Meta:
        model = Interaction
        fields = ["id", "kind", "body", "data", "occurred_at", "author", "created_at"]
        read_only_fields = fields

    def get_author(self, interaction) -> str | None:
        return interaction.author.get_username() if interaction.author_id else None


class BulkResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "updated", "unchanged", "error"])
    id = serializers.IntegerField(allow_null=True)
    errors = serializers.DictField(required=False)


class BulkResponseSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = BulkResultSerializer(many=True)


class ProductInputSerializer(serializers.Serializer):
    """One product of `POST /api/products` (the webshop's catalogue, for product cards in emails)."""

    sku = serializers.RegexField(
        r"^[A-Za-z0-9._\-/ ]{1,100}$", max_length=100, help_text="Letters, digits, . _ - / and spaces."
    )
    name = serializers.CharField(max_length=255)
    url = serializers.URLField(max_length=2000)
    image_url = serializers.URLField(max_length=2000, required=False, allow_blank=True, default="")
    price = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0)
    currency = serializers.RegexField(r"^[A-Z]{3}$", help_text="ISO 4217, e.g. EUR.")
    in_stock = serializers.BooleanField(required=False, default=True)

    def validate(self, attrs):
        for field in ("url", "image_url"):
            if attrs.get(field) and not attrs[field].lower().startswith(("http://", "https://")):
                raise serializers.ValidationError({field: ["Must be an http(s) URL."]})
        nul = _find_nul(attrs)
        if nul:
            raise serializers.ValidationError({nul: ["NUL characters are not allowed."]})
        return attrs


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["sku", "name", "url", "image_url", "price", "currency", "in_stock", "updated_at"]
        read_only_fields = fields
