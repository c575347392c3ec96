"""The admin login form: while the tenant requires SSO, only its break-glass admins use passwords."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from unfold.forms import AuthenticationForm

from .providers import is_break_glass, login_buttons, sso_required


class AdminLoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "sso_required": "This account signs in with single sign-on: use the button below.",
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        if self._on_tenant_host():
            # A tenant's users sign in with their email address (it is their username).
            self.fields["username"].label = _("Email")
            self.fields["username"].widget.attrs.update({"autocomplete": "email", "inputmode": "email"})

    def _on_tenant_host(self):
        tenant = self._tenant()
        return tenant is not None and tenant.schema_name != "public"

    def get_invalid_login_error(self):
        if self._on_tenant_host():
            return ValidationError(
                _("Please enter a correct email and password. Note that both fields may be case-sensitive."),
                code="invalid_login",
            )
        return super().get_invalid_login_error()

    def _tenant(self):
        return getattr(self.request, "tenant", None) if self.request is not None else None

    def clean(self):
        tenant = self._tenant()
        username = (self.cleaned_data.get("username") or "").strip()
        if username and sso_required(tenant):
            # Refused before the password is checked: a guessed password learns nothing here.
            user = get_user_model().objects.filter(username__iexact=username).first()
            if not is_break_glass(user, tenant):
                raise ValidationError(self.error_messages["sso_required"], code="sso_required")
        return super().clean()

    @property
    def sso_buttons(self):
        return login_buttons(self._tenant())

    @property
    def sso_required(self):
        return sso_required(self._tenant())
