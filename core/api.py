"""API conventions shared by every app: pagination, error shapes, auth token endpoint."""

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import Conflict, PayloadTooLarge, ServiceUnavailable
from .throttling import FailureWindow

__all__ = ["Conflict", "PayloadTooLarge", "ServiceUnavailable"]

logger = logging.getLogger(__name__)


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


class AuthFailureThrottle(SimpleRateThrottle):
    """Counts failed logins per client address and username (AUTH_FAILURE_RATE); a burst of failures
    is a 429 with Retry-After. Successful logins are never counted."""

    scope = "auth_failures"
    retry_seconds = 0

    def _window(self):
        return FailureWindow(scope="auth-failures", limit=self.num_requests, seconds=self.duration)

    def _who(self, request):
        username = request.data.get("username", "") if isinstance(request.data, dict) else ""
        return self.get_ident(request), username

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.retry_seconds = self._window().retry_after(*self._who(request))
        return not self.retry_seconds

    def wait(self):
        return self.retry_seconds

    def record_failure(self, request):
        if self.rate is not None:
            self._window().record(*self._who(request))


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class TokenView(APIView):
    """`POST /api/auth/token` with username and password returns the user's API token."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthFailureThrottle]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer("TokenResponse", {"token": serializers.CharField()}),
            400: ERROR_400,
            429: OpenApiResponse(description="Too many failed attempts."),
        },
        auth=[],
    )
    def post(self, request):
        from django.contrib.auth import authenticate

        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request=request._request,
            username=serializer.validated_data["username"].strip().lower(),
            password=serializer.validated_data["password"],
        )
        if user is None or not user.is_active:
            AuthFailureThrottle().record_failure(request)
            raise exceptions.ValidationError(
                {"non_field_errors": ["Unable to log in with these credentials."]}
            )
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class TokenRevokeView(APIView):
    """`DELETE /api/auth/token/current` revokes the token that authenticates the request."""

    @extend_schema(responses={204: None, 401: OpenApiResponse(description="Not authenticated.")})
    def delete(self, request):
        if isinstance(request.auth, Token):
            request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
