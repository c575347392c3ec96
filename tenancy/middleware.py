import base64
import logging
import zoneinfo

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django_tenants.middleware.main import TenantMainMiddleware

logger = logging.getLogger(__name__)

# A transparent 1x1 GIF: what an email client must get for its open pixel, even with the database down.
TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class TenantMiddleware(TenantMainMiddleware):
    """Resolves the tenant from the host.

    A deactivated tenant's hosts answer 410 Gone, except its recipients' unsubscribe and preference
    links (DEACTIVATED_TENANT_PATHS), which keep working, and open pixels, which still get their image
    (nothing is recorded). The template tenant serves nothing. With the database unreachable (a
    restart, a fail-over) the answer is a 503 with Retry-After, never a 500, and still an image for
    open pixels.
    """

    def process_request(self, request):
        try:
            response = super().process_request(request)
        except (OperationalError, InterfaceError) as exc:
            logger.warning("database unavailable while resolving the tenant: %s", exc)
            return database_unavailable(request)
        if response is not None:
            return response
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == "public" or (tenant.is_active and not tenant.is_template):
            return None
        if not tenant.is_template and request.path_info.startswith(tuple(settings.DEACTIVATED_TENANT_PATHS)):
            return None
        connection.set_schema_to_public()
        if request.path_info.startswith(tuple(settings.ALWAYS_AN_IMAGE_PATHS)):
            return _transparent_gif()
        return HttpResponse(
            "This account is not active.", status=410, content_type="text/plain; charset=utf-8"
        )


def _transparent_gif():
    response = HttpResponse(TRANSPARENT_GIF, content_type="image/gif")
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0, private"
    return response


def database_unavailable(request):
    if request.path.startswith(tuple(settings.ALWAYS_AN_IMAGE_PATHS)):
        return _transparent_gif()
    response = JsonResponse({"detail": "The service is temporarily unavailable; retry shortly."}, status=503)
    response["Retry-After"] = "5"
    return response


ADMIN_PATH = "/admin/"


class TenantTimeZoneMiddleware:
    """The tenant's clock for the request: the admin shows and reads date-times in its time zone.

    Storage stays UTC (USE_TZ); only the admin's rendering and form input follow the tenant. The API
    keeps emitting UTC (RFC 3339 with Z, whatever the tenant), and so do the public host and a tenant
    with an unknown zone.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        name = ""
        if request.path_info.startswith(ADMIN_PATH) and tenant is not None and tenant.schema_name != "public":
            name = getattr(tenant, "time_zone", "")
        try:
            zone = zoneinfo.ZoneInfo(name) if name else None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
