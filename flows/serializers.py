"""Shapes of the flows and events API (PRODUCT.md "Flows")."""

import json

from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from .models import Flow, FlowRun, FlowStepLog

MAX_EVENT_PROPERTIES_BYTES = 64 * 1024


def _nul_free(value, path):
    """PostgreSQL's jsonb refuses NUL characters: a 400 naming the path, not a 500."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError(f"{path}: NUL characters are not allowed.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _nul_free(key, path)
            _nul_free(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _nul_free(item, f"{path}[{index}]")


class NulFreeJSONField(serializers.JSONField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        _nul_free(value, self.field_name)
        return value


TRIGGER_EXAMPLE = {"type": "event", "name": "cart.abandoned"}
STEPS_EXAMPLE = [
    {"id": "wait", "type": "delay", "hours": 1},
    {"id": "remind", "type": "email", "template": 1},
    {"id": "order", "type": "wait_for", "event": "order_placed", "timeout": {"hours": 24}, "yes": "done"},
    {"id": "again", "type": "email", "template": 2, "subject": "Still thinking, {{ customer.first_name }}?"},
    {"id": "done", "type": "exit"},
]


@extend_schema_field(
    {
        "type": "object",
        "description": "customer_created | order_placed (min_total, sku) | order_status (status) | "
        "segment_entered (segment, backfill) | event (name) | date (attribute, offset_days)",
        "example": TRIGGER_EXAMPLE,
    }
)
class TriggerField(NulFreeJSONField):
    pass


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "object"},
        "description": "Steps, each with a unique `id` and a `type`: delay, email, branch, wait_for, tag, exit.",
        "example": STEPS_EXAMPLE,
    }
)
class StepsField(NulFreeJSONField):
    pass


@extend_schema_field({"type": "object", "nullable": True, "description": "Segment-language rules."})
class RulesField(NulFreeJSONField):
    pass


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["never", "always"]},
            {"type": "object", "properties": {"after_days": {"type": "integer", "minimum": 1}}},
        ]
    }
)
class ReentryField(NulFreeJSONField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {"start_hour": {"type": "integer"}, "end_hour": {"type": "integer"}},
        "example": {"start_hour": 8, "end_hour": 21},
    }
)
class WindowField(NulFreeJSONField):
    pass


class FlowSerializer(serializers.ModelSerializer):
    # "" means the tenant's default sender: not an email-formatted value, so not declared as one.
    from_email = serializers.CharField(read_only=True)
    trigger = TriggerField()
    steps = StepsField()
    exit_rules = RulesField(allow_null=True)
    reentry = ReentryField()
    send_window = WindowField(allow_null=True)

    class Meta:
        model = Flow
        fields = [
            "id",
            "name",
            "status",
            "trigger",
            "steps",
            "exit_rules",
            "reentry",
            "frequency_cap_hours",
            "send_window",
            "from_email",
            "from_name",
            "version",
            "activated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Abandoned cart",
            value={
                "name": "Abandoned cart",
                "trigger": TRIGGER_EXAMPLE,
                "steps": STEPS_EXAMPLE,
                "reentry": {"after_days": 7},
                "frequency_cap_hours": 16,
                "send_window": {"start_hour": 8, "end_hour": 21},
            },
            request_only=True,
        )
    ]
)
class FlowInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    trigger = TriggerField(required=False, default=dict)
    steps = StepsField(required=False, default=list)
    exit_rules = RulesField(required=False, allow_null=True, default=None)
    reentry = ReentryField(required=False, default="never")
    frequency_cap_hours = serializers.IntegerField(required=False, min_value=0, max_value=8760, default=16)
    send_window = WindowField(required=False, allow_null=True, default=None)
    from_email = serializers.EmailField(required=False, allow_blank=True, default="")
    from_name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class FlowStepStatsSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    reached = serializers.IntegerField()
    waiting = serializers.IntegerField(help_text="Runs whose next step this is, now.")
    sent = serializers.IntegerField()
    skipped = serializers.IntegerField()
    unique_opens = serializers.IntegerField()
    unique_clicks = serializers.IntegerField()
    orders = serializers.IntegerField(help_text="Attributed orders (0 until attribution lands).")
    revenue = serializers.DecimalField(max_digits=14, decimal_places=2)


class FlowStatsSerializer(serializers.Serializer):
    entered = serializers.IntegerField()
    active = serializers.IntegerField()
    completed = serializers.IntegerField()
    exited = serializers.IntegerField()
    steps = FlowStepStatsSerializer(many=True)


class StepLogSerializer(serializers.ModelSerializer):
    message_status = serializers.SerializerMethodField(
        help_text="An email step's message: pending, sent, skipped, ..."
    )
    message_error = serializers.SerializerMethodField(help_text="Why the message was skipped or failed.")

    class Meta:
        model = FlowStepLog
        fields = [
            "step_id",
            "step_type",
            "version",
            "status",
            "detail",
            "at",
            "message_status",
            "message_error",
        ]
        read_only_fields = fields

    def get_message_status(self, log) -> str | None:
        return log.recipient.status if log.recipient_id else None

    def get_message_error(self, log) -> str:
        return log.recipient.error if log.recipient_id else ""


class FlowRunSerializer(serializers.ModelSerializer):
    customer_email = serializers.CharField(source="customer.email", read_only=True, allow_null=True)
    steps = StepLogSerializer(many=True, read_only=True)

    class Meta:
        model = FlowRun
        fields = [
            "id",
            "flow",
            "customer",
            "customer_email",
            "status",
            "version",
            "step_id",
            "due_at",
            "exit_reason",
            "entered_at",
            "finished_at",
            "steps",
        ]
        read_only_fields = fields


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Cart abandoned",
            value={
                "id": "cart-8412-2026-01-05T10:31",
                "name": "cart.abandoned",
                "customer_email": "anna@example.com",
                "occurred_at": "2026-01-05T10:31:00Z",
                "properties": {"cart_url": "https://shop.example/cart/8412", "total": "59.80"},
            },
            request_only=True,
        )
    ]
)
class EventInputSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200, help_text="Idempotency key: the same id twice is stored once.")
    name = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,100}$", max_length=100)
    customer = serializers.IntegerField(required=False, min_value=1)
    customer_email = serializers.EmailField(required=False)
    occurred_at = serializers.DateTimeField(required=False)
    properties = NulFreeJSONField(required=False, default=dict)

    def validate_properties(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_EVENT_PROPERTIES_BYTES:
            raise serializers.ValidationError("At most 64 KB.")
        return value

    def validate(self, attrs):
        if ("customer" in attrs) == ("customer_email" in attrs):
            raise serializers.ValidationError(
                {"customer": ["Give exactly one of customer or customer_email."]}
            )
        return attrs


class EventAcceptedSerializer(serializers.Serializer):
    id = serializers.CharField()
    stored = serializers.BooleanField(
        help_text="False when this id was stored before (nothing happened again)."
    )
