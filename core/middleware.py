"""Request guards that apply to every host: body size for the API, brute force on the admin login,
statement timeouts."""

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse

from .clients import client_key
from .db import is_statement_timeout, web_statement_timeout_apply
from .throttling import LoginAttempt

logger = logging.getLogger(__name__)


class ApiBodySizeLimitMiddleware:
    """Refuse API bodies over API_MAX_BODY_BYTES with 413 before anything reads them.

    DRF parses from the raw WSGI stream, which bypasses DATA_UPLOAD_MAX_MEMORY_SIZE.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
            if length > settings.API_MAX_BODY_BYTES:
                return JsonResponse(
                    {"detail": f"The request body is too large (limit {settings.API_MAX_BODY_BYTES} bytes)."},
                    status=413,
                )
        return self.get_response(request)


class AdminLoginThrottleMiddleware:
    """Failed admin logins, limited exactly as the token endpoint's (core.throttling): per account and
    client, per client and per account; over a limit the answer is 429 with Retry-After.

    The attempt is counted before the login view checks the password. A failed login re-renders the
    form (200); a successful one redirects, and is refunded.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or not request.path.endswith("/admin/login/"):
            return self.get_response(request)
        attempt = LoginAttempt.begin(username=request.POST.get("username", ""), client=client_key(request))
        if attempt.retry_after:
            response = JsonResponse({"detail": "Too many failed logins; try again later."}, status=429)
            response["Retry-After"] = str(attempt.retry_after)
            return response
        response = self.get_response(request)
        if response.status_code in (301, 302, 303):  # signed in
            attempt.succeeded()
        elif response.status_code != 200:  # refused before any password was checked (e.g. CSRF)
            attempt.abandon()
        return response


class StatementTimeoutMiddleware:
    """Web requests run with DB_STATEMENT_TIMEOUT_MS (core.db); a page whose query runs out of time is
    a 503 (the API's own exception handler answers its views), never a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        web_statement_timeout_apply(connection)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_statement_timeout(exception):
            return None
        logger.warning("statement timeout on %s %s", request.method, request.path)
        message = "This took longer than the database allows for a web request; try a narrower request."
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = "30"
        return response
