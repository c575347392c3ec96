from django.http import HttpResponse
from django_tenants.middleware.main import TenantMainMiddleware


class TenantMiddleware(TenantMainMiddleware):
    """Resolves the tenant from the host; a deactivated tenant's hosts answer 410 Gone."""

    def process_request(self, request):
        response = super().process_request(request)
        if response is not None:
            return response
        tenant = getattr(request, "tenant", None)
        if (
            tenant is not None
            and (not tenant.is_active or tenant.is_template)
            and tenant.schema_name != "public"
        ):
            from django.db import connection

            connection.set_schema_to_public()
            return HttpResponse(
                "This account is not active.", status=410, content_type="text/plain; charset=utf-8"
            )
        return None
