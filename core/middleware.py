"""Request guards that apply to every host: body size for the API, brute force on the admin login."""

from django.conf import settings
from django.http import JsonResponse

from .clients import client_key
from .throttling import LoginAttempt


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
