"""While a tenant requires SSO, a session that was signed in with a password ends (break-glass admins
excepted). Sessions only: API tokens authenticate in DRF, after this, and are left alone."""

from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect

from .adapter import SSO_SESSION_KEY
from .providers import is_break_glass, sso_required


class SsoRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        # The tenant's flag first: requests of tenants without SSO never touch the session here.
        if (
            sso_required(tenant)
            and request.user.is_authenticated
            and not request.session.get(SSO_SESSION_KEY)
        ):
            if not is_break_glass(request.user, tenant):
                logout(request)
                if request.path.startswith("/admin/"):
                    messages.info(request, "This account now signs in with single sign-on.")
                    return redirect("admin:login")
        return self.get_response(request)
