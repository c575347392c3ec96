"""Shapes of the segments API. Validation of rules is the rule module's; these only carry data."""

from rest_framework import serializers

from customers.serializers import CustomerSerializer

from .models import Segment


class SegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["id", "name", "description", "kind", "rules", "created_at", "updated_at"]
        read_only_fields = fields


class SegmentDetailSerializer(SegmentSerializer):
    customer_count = serializers.SerializerMethodField(
        help_text="Customers matched now (cached briefly; `?refresh=true` recomputes). "
        "null when the stored rules no longer compile."
    )
    customer_count_at = serializers.SerializerMethodField(help_text="When customer_count was computed.")

    class Meta(SegmentSerializer.Meta):
        fields = [*SegmentSerializer.Meta.fields, "customer_count", "customer_count_at"]
        read_only_fields = fields

    def get_customer_count(self, segment) -> int | None:
        return self.context["count"]["count"]

    def get_customer_count_at(self, segment) -> str:
        return serializers.DateTimeField().to_representation(self.context["count"]["counted_at"])


class StrictInput(serializers.Serializer):
    """Refuses fields it does not know: a typo must not be silently dropped."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Expected a JSON object, got {type(data).__name__}."]}
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


RULES_HELP = (
    "react-querybuilder JSON: a group {combinator: and|or, not?: bool, rules: [rule|group, ...]}; "
    "a rule {field, operator, value}. See PRODUCT.md for fields and operators."
)


class SegmentCreateSerializer(StrictInput):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=["dynamic", "static"], required=False, default="dynamic")
    rules = serializers.JSONField(required=False, allow_null=True, default=None, help_text=RULES_HELP)
    customer_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=10_000,
        help_text="Initial members of a static segment.",
    )


class SegmentUpdateSerializer(StrictInput):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=["dynamic", "static"], required=False)
    rules = serializers.JSONField(required=False, allow_null=True, help_text=RULES_HELP)

    def __init__(self, *args, partial=False, **kwargs):
        super().__init__(*args, partial=partial, **kwargs)
        if not partial:
            # PUT replaces the segment: what it leaves out takes its default (rules then are required
            # of a dynamic segment by the service).
            self.fields["name"].required = True
            self.fields["description"].default = ""
            self.fields["rules"].default = None


class PreviewSerializer(StrictInput):
    rules = serializers.JSONField(help_text=RULES_HELP)


class MembersChangeSerializer(StrictInput):
    add = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10_000
    )
    remove = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10_000
    )


class MembersChangedSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    member_count = serializers.IntegerField()


class FreezeSerializer(StrictInput):
    name = serializers.CharField(max_length=200, required=False)


class SegmentCustomerSerializer(CustomerSerializer):
    """The customer as the segment lists show it: the customer list's fields without addresses."""

    addresses = None

    class Meta(CustomerSerializer.Meta):
        fields = [name for name in CustomerSerializer.Meta.fields if name != "addresses"]
        read_only_fields = fields

    def get_tags(self, customer) -> list[str]:
        return [tag.name for tag in customer.tags.all()]


class PreviewResultSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sample = SegmentCustomerSerializer(many=True)
    milliseconds = serializers.IntegerField()
