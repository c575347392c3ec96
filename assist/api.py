"""The AI assistance API (PRODUCT.md "AI assistance"): views validate, call one service, serialize."""

from django.db import connection
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from campaigns.models import Campaign
from campaigns.selectors import campaign_content
from core.api import ERROR_400, ERROR_404, ERROR_409, Conflict

from . import services
from .subjects import MAX_COUNT

SOURCES = [("offline", "offline"), ("provider", "provider")]


class _AIView(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "ai"


class SegmentTextSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=services.MAX_TEXT_LENGTH, help_text="The customers, in English.")


class SegmentAnswerSerializer(serializers.Serializer):
    rules = serializers.JSONField(help_text="Segment rules (react-querybuilder JSON); they always validate.")
    explanation = serializers.CharField()
    unparsed = serializers.ListField(child=serializers.CharField(), help_text="Words it did not use.")
    source = serializers.ChoiceField(choices=SOURCES)


class SegmentFromTextView(_AIView):
    """A sentence to segment rules: the marketer checks and edits them before saving a segment."""

    permission_model = "segments.Segment"
    model_permissions = {"POST": "view"}  # reads the rules, saves nothing

    @extend_schema(
        request=SegmentTextSerializer,
        responses={
            200: SegmentAnswerSerializer,
            400: ERROR_400,
            403: OpenApiResponse(description="No permission."),
        },
    )
    def post(self, request):
        data = SegmentTextSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = services.segment_from_text(text=data.validated_data["text"], tenant=connection.tenant)
        return Response(SegmentAnswerSerializer(answer).data)


class SubjectsInputSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(
        required=False, min_value=1, help_text="A campaign whose content to use."
    )
    html_body = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=512 * 1024
    )
    text_body = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=256 * 1024
    )
    count = serializers.IntegerField(required=False, min_value=1, max_value=MAX_COUNT, default=5)

    def validate(self, attrs):
        if "campaign" not in attrs and not (attrs.get("html_body") or attrs.get("text_body") or "").strip():
            raise serializers.ValidationError(
                {"campaign": ["Give a campaign, or its html_body or text_body."]}
            )
        return attrs


class RejectedSubjectSerializer(serializers.Serializer):
    subject = serializers.CharField()
    reason = serializers.CharField()


class SubjectsAnswerSerializer(serializers.Serializer):
    subjects = serializers.ListField(child=serializers.CharField())
    source = serializers.ChoiceField(choices=SOURCES)
    rejected = RejectedSubjectSerializer(many=True, help_text="Provider suggestions left out, and why.")


class SubjectSuggestionsView(_AIView):
    permission_model = "campaigns.Campaign"
    model_permissions = {"POST": "change"}  # writing a campaign's subject

    @extend_schema(
        request=SubjectsInputSerializer,
        responses={
            200: SubjectsAnswerSerializer,
            400: ERROR_400,
            403: OpenApiResponse(description="No permission."),
            404: ERROR_404,
        },
    )
    def post(self, request):
        data = SubjectsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        html, text = values.get("html_body", ""), values.get("text_body", "")
        if "campaign" in values:
            campaign = get_object_or_404(Campaign, pk=values["campaign"])
            content = campaign_content(campaign=campaign)
            html, text = html or content["html"], text or content["text"]
        answer = services.subject_suggestions(
            tenant=connection.tenant, html=html, text=text, count=values["count"]
        )
        return Response(SubjectsAnswerSerializer(answer).data)


class SummaryAnswerSerializer(serializers.Serializer):
    summary = serializers.CharField()
    source = serializers.ChoiceField(choices=SOURCES)
    facts = serializers.JSONField(help_text="The figures the summary was written from (the stats API's).")


class CampaignSummaryView(_AIView):
    """Write the campaign's summary now (it is also written when it is sent and a day later)."""

    permission_model = "campaigns.Campaign"  # POST on one campaign: change_campaign

    @extend_schema(
        request=None,
        responses={
            200: SummaryAnswerSerializer,
            403: OpenApiResponse(description="No permission."),
            404: ERROR_404,
            409: ERROR_409,
        },
        tags=["campaigns"],
    )
    def post(self, request, pk):
        campaign = get_object_or_404(Campaign, pk=pk)
        if campaign.status in ("draft", "scheduled"):
            raise Conflict(f"A campaign that is {campaign.status} has no results to summarise yet.")
        answer = services.campaign_summary_write(campaign=campaign, tenant=connection.tenant)
        return Response(SummaryAnswerSerializer(answer).data, status=status.HTTP_200_OK)
