"""The flows and events API: views validate, call one service or selector, serialize."""

from functools import partial

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_400, ERROR_404, ERROR_409, DetailView, choice_param, service_call

from . import selectors, services
from .models import CustomEvent, Flow, FlowRun
from .serializers import (
    EventAcceptedSerializer,
    EventInputSerializer,
    FlowInputSerializer,
    FlowRunSerializer,
    FlowSerializer,
    FlowStatsSerializer,
)
from .services import FlowStateError

_call = partial(service_call, FlowStateError)


class FlowListView(generics.GenericAPIView):
    permission_model = Flow
    serializer_class = FlowSerializer
    queryset = Flow.objects.all()

    @extend_schema(
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=[s for s, _ in Flow.STATUS_CHOICES])],
        responses={200: FlowSerializer(many=True), 400: ERROR_400},
    )
    def get(self, request):
        flows = selectors.flows_list(
            status=choice_param(request, "status", [s for s, _ in Flow.STATUS_CHOICES])
        )
        page = self.paginate_queryset(flows)
        return self.get_paginated_response(FlowSerializer(page, many=True).data)

    @extend_schema(request=FlowInputSerializer, responses={201: FlowSerializer, 400: ERROR_400})
    def post(self, request):
        data = FlowInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        flow = _call(services.flow_create, **data.validated_data)
        return Response(FlowSerializer(flow).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(responses={200: FlowSerializer, 404: ERROR_404}),
    put=extend_schema(
        request=FlowInputSerializer,
        responses={200: FlowSerializer, 400: ERROR_400, 404: ERROR_404, 409: ERROR_409},
        description="An active flow's edit makes a new version: runs continue at the step with the same id.",
    ),
    patch=extend_schema(
        request=FlowInputSerializer,
        responses={200: FlowSerializer, 400: ERROR_400, 404: ERROR_404, 409: ERROR_409},
    ),
    delete=extend_schema(
        responses={204: None, 404: ERROR_404, 409: ERROR_409}, description="Only while draft."
    ),
)
class FlowDetailView(DetailView):
    permission_model = Flow
    serializer_class = FlowSerializer
    input_serializer_class = FlowInputSerializer

    def perform_update(self, flow, changes):
        return _call(services.flow_update, flow=flow, **changes)

    def perform_destroy(self, flow):
        _call(services.flow_delete, flow=flow)


class _FlowAction(APIView):
    permission_model = Flow
    model_permissions = {"POST": "change"}
    service = None

    @extend_schema(
        request=None, responses={200: FlowSerializer, 400: ERROR_400, 404: ERROR_404, 409: ERROR_409}
    )
    def post(self, request, pk):
        flow = _call(type(self).service, flow=get_object_or_404(Flow, pk=pk))
        return Response(FlowSerializer(flow).data)


class FlowActivateView(_FlowAction):
    service = staticmethod(services.flow_activate)


class FlowPauseView(_FlowAction):
    service = staticmethod(services.flow_pause)


class FlowArchiveView(_FlowAction):
    service = staticmethod(services.flow_archive)


class FlowStatsView(APIView):
    permission_model = Flow

    @extend_schema(responses={200: FlowStatsSerializer, 404: ERROR_404})
    def get(self, request, pk):
        stats = selectors.flow_stats(flow=get_object_or_404(Flow, pk=pk))
        return Response(FlowStatsSerializer(stats).data)


class FlowRunsView(generics.GenericAPIView):
    permission_model = FlowRun
    serializer_class = FlowRunSerializer
    queryset = FlowRun.objects.all()

    @extend_schema(
        parameters=[
            OpenApiParameter("customer", OpenApiTypes.INT),
            OpenApiParameter("status", OpenApiTypes.STR, enum=[s for s, _ in FlowRun.STATUS_CHOICES]),
        ],
        responses={200: FlowRunSerializer(many=True), 400: ERROR_400, 404: ERROR_404},
    )
    def get(self, request, pk):
        flow = get_object_or_404(Flow, pk=pk)
        customer = request.query_params.get("customer")
        if customer not in (None, ""):
            if not customer.isdigit() or len(customer) > 18:
                raise exceptions.ValidationError({"customer": ["Must be a customer id."]})
            customer = int(customer)
        else:
            customer = None
        runs = selectors.flow_runs(
            flow=flow,
            customer=customer,
            status=choice_param(request, "status", [s for s, _ in FlowRun.STATUS_CHOICES]),
        )
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(FlowRunSerializer(page, many=True).data)


class EventView(APIView):
    permission_model = CustomEvent
    model_permissions = {"POST": "add"}

    @extend_schema(
        request=EventInputSerializer,
        responses={
            202: EventAcceptedSerializer,
            400: OpenApiResponse(
                description="Invalid input, or an unknown customer: `{field: [messages]}`.",
                examples=[
                    OpenApiExample(
                        "Unknown customer", value={"customer_email": ["No customer with this email."]}
                    )
                ],
            ),
        },
        description="The webshop reports a customer event (e.g. `cart.abandoned`); flows triggered by it "
        "start and runs waiting for it go on. The same `id` twice is stored once.",
    )
    def post(self, request):
        data = EventInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        customer = services.customer_for_event(
            customer_id=values.get("customer"), email=values.get("customer_email")
        )
        if customer is None:
            field = "customer" if "customer" in values else "customer_email"
            raise exceptions.ValidationError({field: ["No such customer."]})
        stored = services.events_record(
            events=[
                {
                    "event_id": values["id"],
                    "name": values["name"],
                    "customer_id": customer.pk,
                    "occurred_at": values.get("occurred_at") or timezone.now(),
                    "properties": values.get("properties") or {},
                }
            ]
        )
        return Response({"id": values["id"], "stored": bool(stored)}, status=status.HTTP_202_ACCEPTED)
