"""Request guards that apply to every host: body size for the API, brute force on the admin login."""

from django.conf import settings
from django.http import JsonResponse

from .throttling import FailureWindow


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
    """After a burst of failed admin logins from one address for one username, answer 429 for a while.

    A failed login re-renders the form (200); a successful one redirects. Cache keys carry the
    tenant's schema (django-tenants' key function), so tenants never share counters.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or not request.path.endswith("/admin/login/"):
            return self.get_response(request)
        window = FailureWindow(
            scope="admin-login-failures",
            limit=settings.ADMIN_LOGIN_MAX_FAILURES,
            seconds=settings.ADMIN_LOGIN_FAILURE_WINDOW,
        )
        who = (request.META.get("REMOTE_ADDR", ""), request.POST.get("username", ""))
        retry_after = window.retry_after(*who)
        if retry_after:
            response = JsonResponse({"detail": "Too many failed logins; try again later."}, status=429)
            response["Retry-After"] = str(retry_after)
            return response
        response = self.get_response(request)
        if response.status_code == 200:  # the form again: a failed login (a success redirects)
            window.record(*who)
        return response
