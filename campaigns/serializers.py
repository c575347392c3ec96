"""Shapes of the templates and campaigns API (PRODUCT.md "Templates and campaigns")."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from segments.models import Segment

from . import senders
from .models import Campaign, CampaignRecipient, EmailTemplate, SenderDomain


class TemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = EmailTemplate
        fields = [
            "id",
            "name",
            "subject",
            "html_body",
            "text_body",
            "design",
            "kind",
            "key",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TemplateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    subject = serializers.CharField(max_length=998)
    html_body = serializers.CharField(allow_blank=True, required=False, default="", trim_whitespace=False)
    text_body = serializers.CharField(allow_blank=True, required=False, default="", trim_whitespace=False)
    design = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="The block editor's design (blocks); when given, html_body and text_body are compiled "
        "from it. null: a raw HTML template.",
    )
    kind = serializers.ChoiceField(choices=EmailTemplate.KIND_CHOICES, required=False, default="marketing")
    key = serializers.ChoiceField(
        choices=EmailTemplate.KEY_CHOICES, allow_null=True, allow_blank=True, required=False, default=None
    )


class TemplatePreviewInputSerializer(serializers.Serializer):
    customer = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="A customer id; sample values when omitted."
    )


class RenderedSerializer(serializers.Serializer):
    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()


class CampaignSerializer(serializers.ModelSerializer):
    # "" means the tenant's default sender: not an email-formatted value, so not declared as one.
    from_email = serializers.CharField(read_only=True)
    reply_to = serializers.CharField(read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "subject",
            "template",
            "html_body",
            "text_body",
            "design",
            "segment",
            "exclude_segment",
            "from_email",
            "from_name",
            "reply_to",
            "track_opens",
            "track_clicks",
            "scheduled_at",
            "status",
            "error",
            "created_at",
            "updated_at",
            "started_at",
            "sent_at",
            "intent",
            "intent_confidence",
            "summary",
            "summary_source",
            "summary_at",
            "variants",
            "ab_test",
            "ab_winner",
        ]
        read_only_fields = fields


class CampaignInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    subject = serializers.CharField(max_length=998, allow_blank=True, required=False)
    template = serializers.PrimaryKeyRelatedField(
        queryset=EmailTemplate.objects.all(), allow_null=True, required=False
    )
    html_body = serializers.CharField(allow_blank=True, required=False, trim_whitespace=False)
    text_body = serializers.CharField(allow_blank=True, required=False, trim_whitespace=False)
    design = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="The block editor's design (blocks); when given, html_body and text_body are compiled "
        "from it. null: a raw HTML template.",
    )
    segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.all(), allow_null=True, required=False
    )
    exclude_segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.all(), allow_null=True, required=False
    )
    from_email = serializers.EmailField(allow_blank=True, required=False)
    from_name = serializers.CharField(max_length=200, allow_blank=True, required=False)
    reply_to = serializers.EmailField(allow_blank=True, required=False)
    track_opens = serializers.BooleanField(required=False)
    track_clicks = serializers.BooleanField(required=False)
    scheduled_at = serializers.DateTimeField(allow_null=True, required=False)
    variants = serializers.JSONField(
        required=False,
        help_text='A/B test: 2 to 4 of {"key": "A".."D", "subject"?, "html_body"?, "text_body"?, "from_name"?}; '
        "what a variant leaves out comes from the campaign. [] removes the test.",
    )
    ab_test = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='{"test_percent": 1..90 (20), "metric": "open_rate"|"click_rate"|"revenue", '
        '"wait_seconds": 60.. (14400), "min_confidence": 0.5..<1 (0.95)}',
    )

    def validate(self, attrs):
        exclude = attrs.get("exclude_segment")
        if exclude is not None and exclude == attrs.get("segment"):
            raise serializers.ValidationError({"exclude_segment": ["Cannot be the segment itself."]})
        return attrs


class WinnerInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=1, help_text='The variant that wins, e.g. "B".')


class SendInputSerializer(serializers.Serializer):
    scheduled_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Schedule for this time instead of sending now."
    )


class TestSendInputSerializer(serializers.Serializer):
    emails = serializers.ListField(child=serializers.EmailField(), min_length=1, max_length=10)
    variant = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=10,
        help_text='A/B test: the variant to send ("A".."D", its subject, content and from name), or '
        '"all" for a copy of each variant to every address. Without it: the campaign\'s own content.',
    )


class TestSendResultSerializer(serializers.Serializer):
    email = serializers.EmailField()
    variant = serializers.CharField(
        allow_null=True, required=False, help_text="The A/B variant of this copy; null: the campaign's own."
    )
    sent = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)


class RecipientSerializer(serializers.ModelSerializer):
    # PRODUCT.md "A/B tests" names a variant by its `key`; a recipient of a campaign without a test
    # (or still held for the winner) has none.
    variant = serializers.SerializerMethodField(
        help_text='The A/B variant this recipient gets ("A".."D"), or null without one (no test, or '
        "held for the winner)."
    )

    class Meta:
        model = CampaignRecipient
        fields = [
            "id",
            "customer",
            "email",
            "status",
            "variant",
            "ab_sample",
            "message_id",
            "attempts",
            "error",
            "sent_at",
            "delivered_at",
            "first_opened_at",
            "first_clicked_at",
            "unsubscribed_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "ab_sample": {"help_text": "In the A/B test's sample (true), or sent the winner afterwards."}
        }

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_variant(self, obj):
        return obj.variant or None


class SenderDomainRecordSerializer(serializers.Serializer):
    purpose = serializers.ChoiceField(
        choices=senders.PURPOSES,
        help_text="verification: proves control of the domain; dkim: the public key.",
    )
    name = serializers.CharField(help_text="The DNS name to publish the record at.")
    type = serializers.CharField(help_text="Always TXT.")
    value = serializers.CharField(help_text="The record's value, exactly.")
    status = serializers.ChoiceField(
        choices=[senders.UNCHECKED, senders.FOUND, senders.MISSING, senders.MISMATCH, senders.ERROR],
        help_text="What the last check found: unchecked, found, missing (no TXT record), mismatch "
        "(TXT records without this value) or error (no answer from the DNS).",
    )
    found = serializers.ListField(
        child=serializers.CharField(), help_text="The TXT values the last check saw."
    )
    detail = serializers.CharField()


class SenderDomainSerializer(serializers.ModelSerializer):
    records = serializers.SerializerMethodField()

    class Meta:
        model = SenderDomain
        fields = [
            "id",
            "domain",
            "status",
            "dkim_selector",
            "verified_at",
            "last_checked_at",
            "created_at",
            "records",
        ]
        read_only_fields = fields

    @extend_schema_field(SenderDomainRecordSerializer(many=True))
    def get_records(self, obj):
        return senders.sender_domain_records(sender_domain=obj)


class SenderDomainInputSerializer(serializers.Serializer):
    domain = serializers.CharField(
        max_length=300, help_text="e.g. example.com (international names welcome)."
    )
