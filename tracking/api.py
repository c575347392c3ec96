"""`GET /api/campaigns/{id}/stats`."""

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_404

from . import selectors


class LinkStatsSerializer(serializers.Serializer):
    url = serializers.CharField()
    clicks = serializers.IntegerField()
    unique_clicks = serializers.IntegerField()


class HourStatsSerializer(serializers.Serializer):
    hour = serializers.DateTimeField(help_text="Start of the hour, UTC.")
    opens = serializers.IntegerField()
    clicks = serializers.IntegerField()


class VariantStatsSerializer(serializers.Serializer):
    key = serializers.CharField()
    recipients = serializers.IntegerField(help_text="In the test sample.")
    sent = serializers.IntegerField()
    unique_opens = serializers.IntegerField()
    unique_clicks = serializers.IntegerField()
    orders = serializers.IntegerField()
    revenue = serializers.CharField(help_text="Attributed revenue, a decimal string.")
    probability_best = serializers.FloatField(
        help_text="Posterior probability of being the best on the test's metric (campaigns/abtests.py)."
    )


class ProbabilityPointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    p = serializers.DictField(child=serializers.FloatField(), help_text="{variant key: probability best}")


class CampaignStatsSerializer(serializers.Serializer):
    status = serializers.CharField()
    recipients = serializers.IntegerField()
    pending = serializers.IntegerField(
        help_text="Not sent yet (pending or being sent); after a cancel only a batch still in flight."
    )
    sent = serializers.IntegerField(help_text="Left us: sent, delivered, bounced or complained.")
    delivered = serializers.IntegerField(help_text="Confirmed by the ESP (complaints included).")
    failed = serializers.IntegerField()
    bounced = serializers.IntegerField()
    complained = serializers.IntegerField()
    cancelled = serializers.IntegerField(
        help_text="Never sent because the campaign was cancelled first (counted in none of the above)."
    )
    skipped = serializers.IntegerField(
        help_text="Not sent because, when their turn came, they had unsubscribed, withdrawn consent, been "
        "suppressed or erased since the audience was frozen (counted in none of the above)."
    )
    opens = serializers.IntegerField(
        help_text="Human opens: pixel loads, plus one for a recipient whose first sign is a click."
    )
    unique_opens = serializers.IntegerField(help_text="Recipients who opened or clicked (humans).")
    machine_opens = serializers.IntegerField(help_text="Pixel loads by prefetchers, scanners and bots.")
    clicks = serializers.IntegerField(help_text="Human clicks.")
    unique_clicks = serializers.IntegerField(help_text="Recipients who clicked (humans).")
    unsubscribes = serializers.IntegerField()
    hits_not_stored = serializers.IntegerField(
        help_text="Open and click hits over their link's budget (replays): answered as usual, not stored "
        "and in none of the figures above. Reported by each web worker at most a minute late."
    )
    open_rate = serializers.FloatField(
        help_text="unique_opens / delivered (or / sent without delivery data)."
    )
    click_rate = serializers.FloatField(help_text="unique_clicks / delivered (or / sent).")
    click_to_open_rate = serializers.FloatField(help_text="unique_clicks / unique_opens.")
    links = LinkStatsSerializer(many=True)
    timeline = HourStatsSerializer(many=True, help_text="Hourly, UTC, first to last active hour.")
    orders = serializers.IntegerField(
        help_text="Orders attributed to the campaign (cancelled and refunded ones left out)."
    )
    revenue = serializers.CharField(help_text="Their total, a decimal string in the tenant's currency.")
    conversion_rate = serializers.FloatField(
        help_text="Distinct customers with an attributed order / delivered (or / sent)."
    )
    revenue_per_recipient = serializers.CharField(
        help_text="revenue / delivered (or / sent), a decimal string."
    )
    variants = VariantStatsSerializer(many=True, help_text="The A/B test's variants (empty without one).")
    winner = serializers.CharField(allow_null=True, help_text="The winning variant's key, or null.")
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.ChoiceField(choices=["confidence", "timeout", "manual"], allow_null=True)
    history = ProbabilityPointSerializer(
        many=True, help_text="Each variant's probability of being best over time (the stats page's chart)."
    )


class CampaignStatsView(APIView):
    permission_model = "campaigns.Campaign"  # reading stats needs view_campaign

    @extend_schema(
        operation_id="campaigns_stats",
        tags=["campaigns"],
        responses={
            200: CampaignStatsSerializer,
            401: OpenApiResponse(description="Not authenticated."),
            404: ERROR_404,
        },
    )
    def get(self, request, pk):
        campaign = selectors.campaign_for_stats(campaign_id=pk)
        if campaign is None:
            raise Http404
        return Response(CampaignStatsSerializer(selectors.campaign_stats(campaign=campaign)).data)
