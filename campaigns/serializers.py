"""Shapes of the templates and campaigns API (PRODUCT.md "Templates and campaigns")."""

from rest_framework import serializers

from segments.models import Segment

from .models import Campaign, CampaignRecipient, EmailTemplate


class TemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = EmailTemplate
        fields = [
            "id",
            "name",
            "subject",
            "html_body",
            "text_body",
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

    def validate(self, attrs):
        exclude = attrs.get("exclude_segment")
        if exclude is not None and exclude == attrs.get("segment"):
            raise serializers.ValidationError({"exclude_segment": ["Cannot be the segment itself."]})
        return attrs


class SendInputSerializer(serializers.Serializer):
    scheduled_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Schedule for this time instead of sending now."
    )


class TestSendInputSerializer(serializers.Serializer):
    emails = serializers.ListField(child=serializers.EmailField(), min_length=1, max_length=10)


class TestSendResultSerializer(serializers.Serializer):
    email = serializers.EmailField()
    sent = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)


class RecipientSerializer(serializers.ModelSerializer):
    class Meta:
        model = CampaignRecipient
        fields = [
            "id",
            "customer",
            "email",
            "status",
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
