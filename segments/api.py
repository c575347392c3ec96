"""The segments API (PRODUCT.md "Segments"): views validate, call one service or selector, serialize."""

from functools import partial

from django.db.models import Prefetch
from django.db.models.functions import Lower
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_400, ERROR_404, ERROR_409, Conflict, service_call
from core.values import parse_bool
from customers.filters import (
    CUSTOMER_ORDERING_FIELDS,
    CustomerFilter,
    CustomerSearchFilter,
    StrictOrderingFilter,
)
from customers.models import Tag
from customers.pagination import CustomerPagination

from . import selectors, services
from .models import Segment
from .rules import RuleError
from .serializers import (
    FreezeSerializer,
    MembersChangedSerializer,
    MembersChangeSerializer,
    PreviewResultSerializer,
    PreviewSerializer,
    SegmentCreateSerializer,
    SegmentCustomerSerializer,
    SegmentDetailSerializer,
    SegmentSerializer,
    SegmentUpdateSerializer,
)

_call = partial(service_call, services.SegmentStateError)


def _segment(pk):
    return get_object_or_404(selectors.segment_list(), pk=pk)


def _detail(segment, request, refresh=False):
    count = selectors.segment_count(segment=segment, refresh=refresh)
    return SegmentDetailSerializer(segment, context={"request": request, "count": count}).data


REFRESH = OpenApiParameter(
    "refresh", OpenApiTypes.BOOL, description="Recompute customer_count instead of using the cached one."
)


def _refresh_flag(request):
    try:
        return bool(parse_bool(request.query_params.get("refresh", "")))
    except ValueError:
        raise exceptions.ValidationError({"refresh": ["Must be true or false."]})


class SegmentListView(generics.GenericAPIView):
    permission_model = Segment
    serializer_class = SegmentSerializer
    filter_backends = [SearchFilter, OrderingFilter]
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name", "created_at", "updated_at"]

    def get_queryset(self):
        return selectors.segment_list()

    @extend_schema(responses={200: SegmentSerializer(many=True), 400: ERROR_400})
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(SegmentSerializer(page, many=True).data)

    @extend_schema(request=SegmentCreateSerializer, responses={201: SegmentDetailSerializer, 400: ERROR_400})
    def post(self, request):
        data = SegmentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        segment = _call(services.segment_create, **data.validated_data)
        return Response(_detail(segment, request), status=status.HTTP_201_CREATED)


class SegmentDetailView(APIView):
    permission_model = Segment

    @extend_schema(
        parameters=[REFRESH], responses={200: SegmentDetailSerializer, 400: ERROR_400, 404: ERROR_404}
    )
    def get(self, request, pk):
        segment = _segment(pk)
        return Response(_detail(segment, request, refresh=_refresh_flag(request)))

    def _update(self, request, pk, partial):
        segment = _segment(pk)
        data = SegmentUpdateSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        segment = _call(services.segment_update, segment=segment, **data.validated_data)
        return Response(_detail(segment, request))

    @extend_schema(
        request=SegmentUpdateSerializer,
        responses={200: SegmentDetailSerializer, 400: ERROR_400, 404: ERROR_404},
    )
    def put(self, request, pk):
        return self._update(request, pk, partial=False)

    @extend_schema(
        request=SegmentUpdateSerializer,
        responses={200: SegmentDetailSerializer, 400: ERROR_400, 404: ERROR_404},
    )
    def patch(self, request, pk):
        return self._update(request, pk, partial=True)

    @extend_schema(responses={204: None, 404: ERROR_404, 409: ERROR_409})
    def delete(self, request, pk):
        _call(services.segment_delete, segment=_segment(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SegmentCustomersView(generics.GenericAPIView):
    """The customers the segment matches now, paginated, with the customer list's filters."""

    permission_model = Segment
    model_permissions = {"GET": ("view", "customers.view_customer")}

    serializer_class = SegmentCustomerSerializer
    filter_backends = [DjangoFilterBackend, CustomerSearchFilter, StrictOrderingFilter]
    filterset_class = CustomerFilter
    pagination_class = CustomerPagination
    ordering_fields = CUSTOMER_ORDERING_FIELDS
    ordering = ["-id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return selectors.customers_matchable().none()
        segment = _segment(self.kwargs["pk"])
        try:
            customers = selectors.segment_customers(segment=segment)
        except RuleError as error:
            raise Conflict(f"The segment's stored rules no longer compile: {'; '.join(error.messages)}")
        return customers.prefetch_related(
            Prefetch("tags", queryset=Tag.objects.order_by(Lower("name"), "id"))
        )

    @extend_schema(
        responses={
            200: SegmentCustomerSerializer(many=True),
            400: ERROR_400,
            404: ERROR_404,
            409: OpenApiResponse(description="The segment's stored rules no longer compile."),
        }
    )
    def get(self, request, pk):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(SegmentCustomerSerializer(page, many=True).data)


class SegmentPreviewView(APIView):
    """Count and a sample of up to 10 customers for rules being edited (query builders)."""

    permission_model = Segment
    model_permissions = {"POST": ("view", "customers.view_customer")}  # reads only
    statement_timeout_blames = "rules"  # rules too expensive to evaluate are the input's fault

    @extend_schema(request=PreviewSerializer, responses={200: PreviewResultSerializer, 400: ERROR_400})
    def post(self, request):
        data = PreviewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            preview = selectors.segment_preview(rules=data.validated_data["rules"])
        except RuleError as error:
            raise exceptions.ValidationError({"rules": error.messages})
        return Response(PreviewResultSerializer(preview).data)


class SegmentMembersView(APIView):
    """Add and remove customers of a static segment: ``{"add": [ids], "remove": [ids]}``."""

    permission_model = Segment  # POST changes the member list: change_segment

    @extend_schema(
        request=MembersChangeSerializer,
        responses={
            200: MembersChangedSerializer,
            400: ERROR_400,
            404: ERROR_404,
            409: OpenApiResponse(description="The segment is dynamic: it has no member list."),
        },
    )
    def post(self, request, pk):
        segment = _segment(pk)
        data = MembersChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = _call(services.segment_members_change, segment=segment, **data.validated_data)
        result["member_count"] = selectors.segment_customers(segment=segment).count()
        return Response(MembersChangedSerializer(result).data)


class SegmentFreezeView(APIView):
    """Save who the segment matches now as a new static segment."""

    permission_model = Segment
    model_permissions = {"POST": "add"}  # makes a new static segment

    @extend_schema(
        request=FreezeSerializer, responses={201: SegmentDetailSerializer, 400: ERROR_400, 404: ERROR_404}
    )
    def post(self, request, pk):
        segment = _segment(pk)
        data = FreezeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        frozen = _call(services.segment_freeze, segment=segment, **data.validated_data)
        return Response(_detail(frozen, request, refresh=True), status=status.HTTP_201_CREATED)
