"""The customers API (PRODUCT.md "Customers"): validate, call one service or selector, serialize."""

from django.http import StreamingHttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ERROR_400, ERROR_404, ERROR_409, Conflict

from . import bulk, selectors, services
from .filters import CUSTOMER_ORDERING_FIELDS, CustomerFilter, CustomerSearchFilter, StrictOrderingFilter
from .models import Customer, Interaction, Order, Product
from .pagination import CustomerPagination
from .serializers import (
    MAX_BULK_ITEMS,
    BulkResponseSerializer,
    CustomerInputSerializer,
    CustomerSerializer,
    InteractionInputSerializer,
    InteractionSerializer,
    OrderInputSerializer,
    OrderSerializer,
    OrderStatusInputSerializer,
)

ERROR_413 = OpenApiResponse(description="The request body is too large.")
ERROR_415 = OpenApiResponse(description="The body is not JSON.")
WRITE_ERRORS = {400: ERROR_400, 413: ERROR_413, 415: ERROR_415}


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only errors reach here (the list streams its rows itself); finalize_response makes them JSON.
        return JSONRenderer().render(data)


def _validated(serializer_class, request, **kwargs):
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer


def _customer_response(customer_id, status_code=status.HTTP_200_OK):
    return Response(CustomerSerializer(selectors.customer_get(pk=customer_id)).data, status=status_code)


class CustomerListView(generics.ListAPIView):
    permission_model = Customer
    model_permissions = {"export": "change"}  # ?format=csv carries every customer out
    serializer_class = CustomerSerializer
    filter_backends = [DjangoFilterBackend, CustomerSearchFilter, StrictOrderingFilter]
    filterset_class = CustomerFilter
    pagination_class = CustomerPagination
    ordering_fields = CUSTOMER_ORDERING_FIELDS
    ordering = ["-id"]
    renderer_classes = [*generics.ListAPIView.renderer_classes, CSVRenderer]

    def get_queryset(self):
        return selectors.customer_list()

    def finalize_response(self, request, response, *args, **kwargs):
        if (
            response.status_code >= 400
            and getattr(request, "accepted_renderer", None).__class__ is CSVRenderer
        ):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        summary="List customers (paginated JSON, or every matching row as CSV with ?format=csv)",
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"])],
        responses={
            200: CustomerSerializer(many=True),
            400: ERROR_400,
            404: OpenApiResponse(description="No such page."),
        },
    )
    def get(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            queryset = self.filter_queryset(Customer.objects.all())
            response = StreamingHttpResponse(
                selectors.customers_csv_rows(queryset), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = 'attachment; filename="customers.csv"'
            return response
        return self.list(request, *args, **kwargs)

    @extend_schema(request=CustomerInputSerializer, responses={201: CustomerSerializer, **WRITE_ERRORS})
    def post(self, request):
        serializer = _validated(CustomerInputSerializer, request)
        customer = services.customer_create(data=serializer.complete(), author=request.user)
        return _customer_response(customer.pk, status.HTTP_201_CREATED)


class CustomerDetailView(APIView):
    permission_model = Customer  # DELETE erases: delete_customer

    def get_object(self):
        return generics.get_object_or_404(Customer.objects.all(), pk=self.kwargs["pk"])

    @extend_schema(responses={200: CustomerSerializer, 404: ERROR_404})
    def get(self, request, pk):
        return _customer_response(self.get_object().pk)

    def _update(self, request, *, partial):
        customer = self.get_object()
        if customer.erased_at is not None:
            raise Conflict("This customer's personal data was erased; it cannot be edited.")
        serializer = _validated(CustomerInputSerializer, request, partial=partial)
        data = serializer.validated_data if partial else serializer.complete()
        services.customer_update(customer=customer, data=data, author=request.user)
        return _customer_response(customer.pk)

    @extend_schema(
        request=CustomerInputSerializer,
        responses={200: CustomerSerializer, 404: ERROR_404, 409: ERROR_409, **WRITE_ERRORS},
    )
    def put(self, request, pk):
        return self._update(request, partial=False)

    @extend_schema(
        request=CustomerInputSerializer,
        responses={200: CustomerSerializer, 404: ERROR_404, 409: ERROR_409, **WRITE_ERRORS},
    )
    def patch(self, request, pk):
        return self._update(request, partial=True)

    @extend_schema(
        summary="Erase the customer's personal data (GDPR); orders and history stay without PII",
        responses={204: None, 404: ERROR_404},
    )
    def delete(self, request, pk):
        services.customer_erase(customer=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class CustomerOrdersView(generics.ListAPIView):
    permission_model = Order
    model_permissions = {"GET": ("view", "customers.view_customer")}
    serializer_class = OrderSerializer
    filter_backends = []

    def get_queryset(self):
        customer = generics.get_object_or_404(Customer.objects.all(), pk=self.kwargs["pk"])
        return selectors.customer_orders(customer=customer)

    @extend_schema(
        summary="Purchase history, newest first", responses={200: OrderSerializer(many=True), 404: ERROR_404}
    )
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)


class CustomerActivityView(generics.ListAPIView):
    permission_model = Interaction
    model_permissions = {"GET": ("view", "customers.view_customer"), "POST": "add"}
    serializer_class = InteractionSerializer
    filter_backends = []

    def get_customer(self):
        return generics.get_object_or_404(Customer.objects.all(), pk=self.kwargs["pk"])

    def get_queryset(self):
        return selectors.customer_activity(customer=self.get_customer())

    @extend_schema(
        summary="Interaction log, newest first",
        responses={200: InteractionSerializer(many=True), 404: ERROR_404},
    )
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

    @extend_schema(
        summary="Add a note, call or meeting",
        request=InteractionInputSerializer,
        responses={201: InteractionSerializer, 404: ERROR_404, **WRITE_ERRORS},
    )
    def post(self, request, pk):
        customer = self.get_customer()
        data = _validated(InteractionInputSerializer, request).validated_data
        interaction = services.interaction_add(customer=customer, author=request.user, **data)
        return Response(InteractionSerializer(interaction).data, status=status.HTTP_201_CREATED)


def _bulk_items(request):
    items = request.data
    if not isinstance(items, list):
        raise ValidationError({"non_field_errors": ["Expected a JSON array of items."]})
    if not items:
        raise ValidationError({"non_field_errors": ["Expected at least one item."]})
    if len(items) > MAX_BULK_ITEMS:
        raise ValidationError(
            {"non_field_errors": [f"At most {MAX_BULK_ITEMS} items per request, got {len(items)}."]}
        )
    return items


BULK_REQUEST = {
    "application/json": {"type": "array", "maxItems": MAX_BULK_ITEMS, "items": {"type": "object"}}
}


# POST a JSON array of up to MAX_BULK_ITEMS items to `service` (a bulk upsert taking `items`); the
# answer is its result per item. Subclasses name the model, the service and the schema's summary (a
# comment, not a docstring: the schema would show a view class's docstring as the operation's text).
class _BulkUpsertView(APIView):
    permission_model = None
    model_permissions = {"POST": ("add", "change")}  # an upsert
    service = None

    @extend_schema(request=BULK_REQUEST, responses={200: BulkResponseSerializer, **WRITE_ERRORS})
    def post(self, request):
        return Response(type(self).service(items=_bulk_items(request)))


@extend_schema_view(
    post=extend_schema(summary="Upsert up to 1000 customers (by external_id, else email); a result per item")
)
class CustomerBulkView(_BulkUpsertView):
    permission_model = Customer
    service = staticmethod(bulk.customers_bulk_upsert)


class OrderUpsertView(APIView):
    permission_model = Order
    model_permissions = {"POST": ("add", "change")}  # an upsert

    @extend_schema(
        summary="Record an order (idempotent by external_id; 201 when new, 200 when re-delivered)",
        request=OrderInputSerializer,
        responses={200: OrderSerializer, 201: OrderSerializer, **WRITE_ERRORS},
    )
    def post(self, request):
        data = _validated(OrderInputSerializer, request).validated_data
        order, created = services.order_upsert(data=data)
        order = Order.objects.select_related("attribution").prefetch_related("items").get(pk=order.pk)
        return Response(
            OrderSerializer(order).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class OrderDetailView(APIView):
    permission_model = Order

    def get_object(self):
        return generics.get_object_or_404(
            Order.objects.select_related("attribution").prefetch_related("items"), pk=self.kwargs["pk"]
        )

    @extend_schema(responses={200: OrderSerializer, 404: ERROR_404})
    def get(self, request, pk):
        return Response(OrderSerializer(self.get_object()).data)

    @extend_schema(
        summary="Change an order's status",
        request=OrderStatusInputSerializer,
        responses={200: OrderSerializer, 404: ERROR_404, **WRITE_ERRORS},
    )
    def patch(self, request, pk):
        order = self.get_object()
        data = _validated(OrderStatusInputSerializer, request).validated_data
        services.order_set_status(order=order, status=data["status"])
        return Response(OrderSerializer(self.get_object()).data)


@extend_schema_view(post=extend_schema(summary="Upsert up to 1000 orders; a result per item"))
class OrderBulkView(_BulkUpsertView):
    permission_model = Order
    service = staticmethod(bulk.orders_bulk_upsert)


@extend_schema_view(
    post=extend_schema(
        summary="Upsert up to 1000 products by SKU (for product cards in emails); a result per item"
    )
)
class ProductBulkView(_BulkUpsertView):
    permission_model = Product
    service = staticmethod(bulk.products_bulk_upsert)
