"""The templates and campaigns API: views validate, call one service or selector, serialize."""

from functools import partial

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_400, ERROR_404, ERROR_409, DetailView, choice_param, service_call
from customers.models import Customer

from . import abtests, editing, email_templates, lifecycle, proofs, selectors, senders
from .lifecycle import CampaignStateError
from .models import Campaign, CampaignRecipient, EmailTemplate, SenderDomain
from .serializers import (
    CampaignInputSerializer,
    CampaignSerializer,
    RecipientSerializer,
    RenderedSerializer,
    SenderDomainInputSerializer,
    SenderDomainSerializer,
    SendInputSerializer,
    TemplateInputSerializer,
    TemplatePreviewInputSerializer,
    TemplateSerializer,
    TestSendInputSerializer,
    TestSendResultSerializer,
    WinnerInputSerializer,
)

_call = partial(service_call, CampaignStateError)


# --- templates ---------------------------------------------------------------------------------------


class TemplateListView(generics.GenericAPIView):
    permission_model = EmailTemplate
    serializer_class = TemplateSerializer
    queryset = EmailTemplate.objects.all()

    @extend_schema(
        parameters=[OpenApiParameter("kind", OpenApiTypes.STR, enum=["marketing", "transactional"])],
        responses={200: TemplateSerializer(many=True), 400: ERROR_400},
    )
    def get(self, request):
        templates = EmailTemplate.objects.all()
        kind = choice_param(request, "kind", [k for k, _ in EmailTemplate.KIND_CHOICES])
        if kind:
            templates = templates.filter(kind=kind)
        page = self.paginate_queryset(templates)
        return self.get_paginated_response(TemplateSerializer(page, many=True).data)

    @extend_schema(request=TemplateInputSerializer, responses={201: TemplateSerializer, 400: ERROR_400})
    def post(self, request):
        data = TemplateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        template = _call(email_templates.template_create, **data.validated_data)
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(responses={200: TemplateSerializer, 404: ERROR_404}),
    put=extend_schema(
        request=TemplateInputSerializer, responses={200: TemplateSerializer, 400: ERROR_400, 404: ERROR_404}
    ),
    patch=extend_schema(
        request=TemplateInputSerializer, responses={200: TemplateSerializer, 400: ERROR_400, 404: ERROR_404}
    ),
    delete=extend_schema(responses={204: None, 404: ERROR_404}),
)
class TemplateDetailView(DetailView):
    permission_model = EmailTemplate
    serializer_class = TemplateSerializer
    input_serializer_class = TemplateInputSerializer

    def perform_update(self, template, changes):
        return _call(email_templates.template_update, template=template, **changes)

    def perform_destroy(self, template):
        email_templates.template_delete(template=template)


class TemplatePreviewView(APIView):
    permission_model = EmailTemplate
    model_permissions = {"POST": ("view", "customers.view_customer")}  # renders, changes nothing

    @extend_schema(
        request=TemplatePreviewInputSerializer,
        responses={200: RenderedSerializer, 400: ERROR_400, 404: ERROR_404},
    )
    def post(self, request, pk):
        template = get_object_or_404(EmailTemplate, pk=pk)
        data = TemplatePreviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        customer = None
        if data.validated_data.get("customer"):
            customer = Customer.objects.filter(pk=data.validated_data["customer"]).first()
            if customer is None:
                raise exceptions.ValidationError({"customer": ["No such customer."]})
        rendered = _call(
            email_templates.template_preview,
            subject=template.subject,
            html_body=template.html_body,
            text_body=template.text_body,
            customer=customer,
            kind=template.kind,
        )
        return Response(RenderedSerializer(rendered).data)


# --- campaigns ---------------------------------------------------------------------------------------


def _campaign(pk):
    return get_object_or_404(Campaign.objects.listed(), pk=pk)


class CampaignListView(generics.GenericAPIView):
    permission_model = Campaign
    serializer_class = CampaignSerializer
    queryset = Campaign.objects.all()

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=[s for s, _ in Campaign.STATUS_CHOICES]),
            OpenApiParameter("intent", OpenApiTypes.STR, enum=[i for i, _ in Campaign.INTENT_CHOICES]),
        ],
        responses={200: CampaignSerializer(many=True), 400: ERROR_400},
    )
    def get(self, request):
        state = choice_param(request, "status", [s for s, _ in Campaign.STATUS_CHOICES])
        intent = choice_param(request, "intent", [i for i, _ in Campaign.INTENT_CHOICES])
        page = self.paginate_queryset(selectors.campaigns_list(status=state, intent=intent))
        return self.get_paginated_response(CampaignSerializer(page, many=True).data)

    @extend_schema(request=CampaignInputSerializer, responses={201: CampaignSerializer, 400: ERROR_400})
    def post(self, request):
        data = CampaignInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = _call(editing.campaign_create, **data.validated_data)
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailView(APIView):
    permission_model = Campaign

    @extend_schema(responses={200: CampaignSerializer, 404: ERROR_404})
    def get(self, request, pk):
        return Response(CampaignSerializer(_campaign(pk)).data)

    def _update(self, request, pk, partial):
        campaign = _campaign(pk)
        data = CampaignInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        campaign = _call(editing.campaign_update, campaign=campaign, **data.validated_data)
        return Response(CampaignSerializer(campaign).data)

    @extend_schema(
        request=CampaignInputSerializer,
        responses={200: CampaignSerializer, 400: ERROR_400, 404: ERROR_404, 409: ERROR_409},
    )
    def put(self, request, pk):
        return self._update(request, pk, partial=False)

    @extend_schema(
        request=CampaignInputSerializer,
        responses={200: CampaignSerializer, 400: ERROR_400, 404: ERROR_404, 409: ERROR_409},
    )
    def patch(self, request, pk):
        return self._update(request, pk, partial=True)


ACTION_RESPONSES = {200: CampaignSerializer, 404: ERROR_404, 409: ERROR_409}


class CampaignSendView(APIView):
    permission_model = Campaign  # POST is an action: change_campaign

    @extend_schema(
        request=SendInputSerializer,
        responses={
            202: CampaignSerializer,
            400: ERROR_400,
            404: ERROR_404,
            409: ERROR_409,
        },
        description="Send now (202, the workers take over), or schedule with `scheduled_at` in the future.",
    )
    def post(self, request, pk):
        campaign = _campaign(pk)
        data = SendInputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        scheduled_at = data.validated_data.get("scheduled_at")
        if scheduled_at is not None:
            campaign = _call(lifecycle.campaign_schedule, campaign=campaign, scheduled_at=scheduled_at)
        else:
            campaign = _call(lifecycle.campaign_send_now, campaign=campaign)
        campaign.refresh_from_db()
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_202_ACCEPTED)


class _ActionView(APIView):
    permission_model = Campaign  # pause, resume, cancel: change_campaign
    service = None

    @extend_schema(request=None, responses=ACTION_RESPONSES)
    def post(self, request, pk):
        campaign = _call(type(self).service, campaign=_campaign(pk))
        campaign.refresh_from_db()
        return Response(CampaignSerializer(campaign).data)


class CampaignPauseView(_ActionView):
    service = staticmethod(lifecycle.campaign_pause)


class CampaignResumeView(_ActionView):
    service = staticmethod(lifecycle.campaign_resume)


class CampaignCancelView(_ActionView):
    service = staticmethod(lifecycle.campaign_cancel)


class CampaignWinnerView(APIView):
    permission_model = Campaign  # an action: change_campaign

    @extend_schema(
        request=WinnerInputSerializer,
        responses={
            200: CampaignSerializer,
            400: ERROR_400,
            404: ERROR_404,
            409: ERROR_409,
        },
        description="Decide an A/B test by hand before its wait is over (`decided_by` manual): the rest "
        "of the audience gets this variant. 409 when the campaign has no test, it is decided already, "
        "or the campaign is not sending.",
    )
    def post(self, request, pk):
        campaign = _campaign(pk)
        data = WinnerInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        service_call(
            abtests.ABStateError,
            abtests.campaign_ab_decide,
            campaign=campaign,
            key=data.validated_data["key"],
        )
        campaign.refresh_from_db()
        return Response(CampaignSerializer(campaign).data)


class CampaignTestView(APIView):
    permission_model = Campaign  # POST is an action: change_campaign

    @extend_schema(
        request=TestSendInputSerializer,
        responses={
            200: TestSendResultSerializer(many=True),
            400: ERROR_400,
            404: ERROR_404,
        },
        description="Send a test copy (subject marked [Test]); no recipient rows, counted nowhere. "
        'An A/B campaign\'s variant with `variant` ("B": subject marked [Test B]), or all of them with '
        '"all" (a copy of each to every address); a key the campaign does not have is a 400.',
    )
    def post(self, request, pk):
        campaign = _campaign(pk)
        data = TestSendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        results = _call(
            proofs.campaign_test_send,
            campaign=campaign,
            emails=data.validated_data["emails"],
            variant=data.validated_data.get("variant"),
        )
        return Response(TestSendResultSerializer(results, many=True).data)


class CampaignRecipientsView(generics.GenericAPIView):
    permission_model = CampaignRecipient
    model_permissions = {"GET": ("view", "campaigns.view_campaign")}
    serializer_class = RecipientSerializer

    def get_queryset(self):  # for the schema generator only
        return selectors.campaign_recipients(campaign=None).none()

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                enum=[s for s, _ in CampaignRecipient.STATUS_CHOICES],
            ),
            OpenApiParameter(
                "variant",
                OpenApiTypes.STR,
                enum=list(abtests.VARIANT_KEYS),
                description="Only the recipients of this A/B variant (one of the campaign's keys).",
            ),
        ],
        responses={200: RecipientSerializer(many=True), 400: ERROR_400, 404: ERROR_404},
    )
    def get(self, request, pk):
        campaign = _campaign(pk)
        state = choice_param(request, "status", [s for s, _ in CampaignRecipient.STATUS_CHOICES])
        keys = [v["key"] for v in campaign.variants or []]
        if not keys and request.query_params.get("variant"):
            raise exceptions.ValidationError({"variant": ["This campaign has no A/B test."]})
        variant = choice_param(request, "variant", keys)
        page = self.paginate_queryset(
            selectors.campaign_recipients(campaign=campaign, status=state, variant=variant)
        )
        return self.get_paginated_response(RecipientSerializer(page, many=True).data)


class CampaignProgressView(APIView):
    permission_model = Campaign

    @extend_schema(
        responses={
            200: OpenApiResponse(description="Recipient counts by status, total, done and percent."),
            404: ERROR_404,
        }
    )
    def get(self, request, pk):
        campaign = _campaign(pk)
        return Response({"status": campaign.status, **selectors.campaign_progress(campaign=campaign)})


# --- sender domains ----------------------------------------------------------------------------------


class SenderDomainListView(generics.GenericAPIView):
    serializer_class = SenderDomainSerializer
    queryset = SenderDomain.objects.all()

    @extend_schema(responses={200: SenderDomainSerializer(many=True)})
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SenderDomainSerializer(page, many=True).data)

    @extend_schema(
        request=SenderDomainInputSerializer,
        responses={201: SenderDomainSerializer, 400: ERROR_400},
        description="Add a domain to send from: the answer lists the two TXT records to publish "
        "(verification and DKIM); then call verify. Its addresses are refused until it is verified.",
    )
    def post(self, request):
        data = SenderDomainInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sender_domain = senders.sender_domain_create(domain=data.validated_data["domain"])
        return Response(SenderDomainSerializer(sender_domain).data, status=status.HTTP_201_CREATED)


class SenderDomainDetailView(generics.GenericAPIView):
    serializer_class = SenderDomainSerializer
    queryset = SenderDomain.objects.all()

    @extend_schema(responses={200: SenderDomainSerializer, 404: ERROR_404})
    def get(self, request, pk):
        return Response(SenderDomainSerializer(self.get_object()).data)

    @extend_schema(
        responses={204: None, 404: ERROR_404, 409: ERROR_409},
        description="Remove the domain and its key; 409 while a live campaign or the account's default "
        "sender uses it.",
    )
    def delete(self, request, pk):
        service_call(senders.SenderDomainInUse, senders.sender_domain_delete, sender_domain=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SenderDomainVerifyView(generics.GenericAPIView):
    serializer_class = SenderDomainSerializer
    queryset = SenderDomain.objects.all()

    @extend_schema(
        request=None,
        responses={200: SenderDomainSerializer, 404: ERROR_404},
        description="Look up both records in the DNS now. Both found: `verified`; either missing or "
        "different: `failed`; no answer from the DNS: the status stays, each record says why.",
    )
    def post(self, request, pk):
        sender_domain = senders.sender_domain_verify(sender_domain=self.get_object())
        return Response(SenderDomainSerializer(sender_domain).data)
