"""API conventions shared by every app: error shapes, the auth token endpoints."""

import logging

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .clients import client_key
from .db import is_statement_timeout
from .exceptions import Conflict, PayloadTooLarge, ServiceUnavailable
from .throttling import LoginAttempt
from .tokens import token_issue

__all__ = ["Conflict", "PayloadTooLarge", "ServiceUnavailable"]

logger = logging.getLogger(__name__)


def _statement_timeout_error(view):
    """A statement that ran out of time: the input's fault (400 naming the field) where the view says
    so with `statement_timeout_blames = "<field>"`, else a 503."""
    field = getattr(view, "statement_timeout_blames", None)
    logger.warning("statement timeout in %s", view.__class__.__name__)
    if field:
        return exceptions.ValidationError(
            {
                field: [
                    f"This is too expensive to evaluate within {settings.DB_STATEMENT_TIMEOUT_MS} ms; simplify it."
                ]
            }
        )
    return ServiceUnavailable(
        "This took longer than the database allows for a web request; try a narrower request."
    )


def exception_handler(exc, context):
    """DRF's handler, plus Django's own errors mapped to their 4xx instead of a 500."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif is_statement_timeout(exc):
        exc = _statement_timeout_error(context.get("view"))
    elif isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc)
        exc = ServiceUnavailable()
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == 503:
        response["Retry-After"] = "5"
    return response


ERROR_400 = OpenApiResponse(description="Invalid input: `{field: [messages]}`.")
ERROR_404 = OpenApiResponse(description="Not found (objects of other tenants too).")
ERROR_409 = OpenApiResponse(description="The object's state does not allow this.")


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class TokenView(APIView):
    """`POST /api/auth/token` with username and password returns the user's API token.

    Failed logins are limited per account and client, per client and per account (core.throttling):
    the attempt is counted before the password is checked, so parallel guesses cannot slip through.
    """

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = []

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer("TokenResponse", {"token": serializers.CharField()}),
            400: ERROR_400,
            429: OpenApiResponse(description="Too many failed logins for this account or from this client."),
        },
        auth=[],
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"].strip().lower()
        attempt = LoginAttempt.begin(username=username, client=client_key(request))
        if attempt.retry_after:
            raise exceptions.Throttled(wait=attempt.retry_after)
        user = authenticate(
            request=request._request, username=username, password=serializer.validated_data["password"]
        )
        if user is None or not user.is_active:
            raise exceptions.ValidationError(
                {"non_field_errors": ["Unable to log in with these credentials."]}
            )
        attempt.succeeded()
        return Response({"token": token_issue(user=user).key})


class TokenRevokeView(APIView):
    """`DELETE /api/auth/token/current` revokes the token that authenticates the request."""

    permission_classes = [IsAuthenticated]  # one's own token: no model permission involved

    @extend_schema(responses={204: None, 401: OpenApiResponse(description="Not authenticated.")})
    def delete(self, request):
        if isinstance(request.auth, Token):
            request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


def choice_param(request, name, choices):
    """The query parameter `name`: None when absent or empty, else one of `choices` (a 400 naming the
    parameter when it is not)."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if value not in choices:
        raise exceptions.ValidationError({name: [f"'{value}' is not one of {', '.join(choices)}."]})
    return value


def service_call(state_error, service, /, **kwargs):
    """Run a service; its `state_error` (the app's state machine refusing the change) is a 409 Conflict.
    Its ValidationError becomes a 400 in exception_handler. An app binds its own error class once:
    `_call = partial(service_call, CampaignStateError)`."""
    try:
        return service(**kwargs)
    except state_error as error:
        raise Conflict(str(error)) from error


# GET, PUT, PATCH and DELETE of one object by `pk`: `permission_model` (a model class) is looked up,
# `input_serializer_class` validates a change (PATCH: only the fields sent), the subclass's
# `perform_update(obj, changes)` and `perform_destroy(obj)` call the services, and `serializer_class`
# shapes the answer. Subclasses describe their schema with extend_schema_view. (A comment, not a
# docstring: the schema would show a view class's docstring, inherited, as every operation's text.)
class DetailView(APIView):
    permission_model = None
    serializer_class = None
    input_serializer_class = None

    def perform_update(self, obj, changes):
        raise NotImplementedError

    def perform_destroy(self, obj):
        raise NotImplementedError

    def get_object(self, pk):
        return get_object_or_404(self.permission_model, pk=pk)

    def get(self, request, pk):
        return Response(self.serializer_class(self.get_object(pk)).data)

    def _update(self, request, pk, partial):
        obj = self.get_object(pk)
        data = self.input_serializer_class(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        changes = {
            key: value for key, value in data.validated_data.items() if key in request.data or not partial
        }
        return Response(self.serializer_class(self.perform_update(obj, changes)).data)

    def put(self, request, pk):
        return self._update(request, pk, partial=False)

    def patch(self, request, pk):
        return self._update(request, pk, partial=True)

    def delete(self, request, pk):
        self.perform_destroy(self.get_object(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
