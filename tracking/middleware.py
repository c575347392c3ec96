"""The open pixel and the click redirect skip the middleware they do not need.

Every open and click of every email arrives here, so these two paths are the busiest of the service,
and the full middleware stack costs them more than their own work (measured: benchmark row 5). Their
answer is a GIF or a 302 that reads no session, user, cookie or CSRF token, so this middleware, first
in MIDDLEWARE, answers them itself:

- the tenant is resolved from the host in one statement of our own, which also points the
  connection's search_path at the tenant's schema (the statement the hit then runs needs no `SET` of
  its own): the same rows django-tenants' lookup reads, fresh on every request, so a deactivated
  tenant or a moved domain is seen at once;
- the view is the product's own (tracking.views: token verification, budgets, the hit, machine-open
  detection), wrapped in the middleware whose headers these answers carry (SecurityMiddleware, X-Frame-
  Options) and with the web statement timeout (core.middleware) and the Content-Length that
  CommonMiddleware would add.

Anything else goes down the whole stack as before: another method, a host that is not an active
tenant's (the stack answers 404, 410 or the deactivated tenant's image), an unknown or invalid token,
a click whose link does not resolve or whose database write failed (the stack renders the page), the
database unreachable (the stack answers 503 or the image).
"""

import functools
import logging

from django.core.exceptions import DisallowedHost
from django.db import Error, connection
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, remove_www

from core.db import web_statement_timeout_apply
from tenancy.models import Domain, Tenant

from . import views

logger = logging.getLogger(__name__)

OPEN_PREFIX = "/t/o/"
CLICK_PREFIX = "/t/c/"

_TENANT_COLUMNS = [field.attname for field in Tenant._meta.concrete_fields]


@functools.cache
def _tenant_sql(public):
    """One round trip: the host's active tenant, and the connection's search_path set to its schema in
    the same statement (set_config runs only for the row found: no row, nothing changes). The tables
    are named with their schema: whatever schema the connection was left on, these live in public."""
    columns = ", ".join(f"t.{column}" for column in _TENANT_COLUMNS)
    return f"""
SELECT set_config('search_path', quote_ident(t.schema_name) || ',' || quote_ident(%(public)s), false),
       {columns}
FROM {public}.{Domain._meta.db_table} d JOIN {public}.{Tenant._meta.db_table} t ON t.id = d.tenant_id
WHERE d.domain = %(host)s AND t.is_active AND NOT t.is_template AND t.schema_name <> %(public)s
"""


def _tenant_for_host(host):
    """The active tenant serving `host`, with the connection on its schema; None when there is none."""
    public = get_public_schema_name()
    with connection.cursor() as cursor:
        cursor.execute(_tenant_sql(public), {"host": host, "public": public})
        row = cursor.fetchone()
    if row is None:
        return None
    tenant = Tenant.from_db(connection.alias, _TENANT_COLUMNS, row[1:])
    tenant.domain_url = host
    connection.set_tenant(tenant)
    # The server's search_path is the tenant's now: tell django-tenants, so that its next cursor does
    # not send the same `SET` again (TENANT_LIMIT_SET_CALLS), when its own path would be this one.
    if connection._get_cursor_search_paths() == [tenant.schema_name, public]:
        connection.search_path_set_schemas = [tenant.schema_name, public]
    return tenant


class TrackingLinksMiddleware:
    """First in MIDDLEWARE: answers a valid open or click of an active tenant's host (module doc)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.security = SecurityMiddleware(get_response)
        self.xframe = XFrameOptionsMiddleware(get_response)

    def __call__(self, request):
        path = request.path_info
        if path.startswith(OPEN_PREFIX):
            answer = views.open_pixel
        elif path.startswith(CLICK_PREFIX):
            answer = views.click_answer
        else:
            return self.get_response(request)
        token = path[len(OPEN_PREFIX) :]  # both prefixes have the same length
        if request.method not in ("GET", "HEAD") or not token or "/" in token:
            return self.get_response(request)
        # An http request where https is required: the stack redirects it, before anything is recorded.
        if self.security.process_request(request) is not None:
            return self.get_response(request)
        try:
            tenant = _tenant_for_host(remove_www(request.get_host().split(":")[0]))
        except DisallowedHost:
            return self.get_response(request)
        except Error as error:  # the database unreachable: the stack answers (503, or the image)
            logger.warning("tracking link: tenant not resolved (%s), the full stack answers", error)
            return self.get_response(request)
        if tenant is None:
            return self.get_response(request)
        request.tenant = tenant
        timezone.deactivate()
        web_statement_timeout_apply(connection)
        response = answer(request, token)
        if response is None:  # a page: the full stack renders it
            return self.get_response(request)
        response.headers["Content-Length"] = str(len(response.content))
        return self.security.process_response(request, self.xframe.process_response(request, response))
