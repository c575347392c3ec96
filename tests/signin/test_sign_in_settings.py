"""The sign-in settings of a tenant: secrets encrypted at rest, refusals that change nothing."""

import pytest
from django.core.exceptions import ValidationError

from core.secrets import decrypt
from tenancy.models import Tenant
from tenancy.tenant_settings import tenant_settings_update

pytestmark = pytest.mark.django_db

FIELDS = [f.name for f in Tenant._meta.fields if f.name.startswith(("sso_", "ai_"))]


def _row(tenant):
    return Tenant.objects.filter(pk=tenant.pk).values(*FIELDS)[0]


def test_it_stores_client_secrets_encrypted_and_keeps_them_when_left_empty(tenant):
    tenant_settings_update(
        tenant=tenant,
        changes={
            "sso_oidc_enabled": True,
            "sso_oidc_issuer": "https://login.example.com/realms/shop",
            "sso_oidc_client_id": "crm",
            "sso_oidc_client_secret": "s3cret-value",
        },
    )
    stored = Tenant.objects.get(pk=tenant.pk).sso_oidc_client_secret
    assert "s3cret-value" not in stored
    assert decrypt(stored) == "s3cret-value"

    tenant_settings_update(tenant=Tenant.objects.get(pk=tenant.pk), changes={"sso_oidc_client_secret": ""})

    assert decrypt(Tenant.objects.get(pk=tenant.pk).sso_oidc_client_secret) == "s3cret-value"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sso_google_enabled": True}, "sso_google_client_id"),
        (
            {"sso_oidc_enabled": True, "sso_oidc_client_id": "x", "sso_oidc_client_secret": "y"},
            "sso_oidc_issuer",
        ),
        ({"sso_oidc_issuer": "http://login.example.com"}, "sso_oidc_issuer"),
        ({"sso_oidc_issuer": "javascript:alert(1)"}, "sso_oidc_issuer"),
        ({"sso_signup_enabled": True}, "sso_signup_domains"),
        ({"sso_signup_domains": "not a domain"}, "sso_signup_domains"),
        ({"sso_required": True}, "sso_required"),
        ({"sso_break_glass": "nobody@tenant-a.localhost"}, "sso_break_glass"),
    ],
)
def test_it_refuses_bad_sign_in_settings_naming_the_field_and_changes_nothing(tenant, changes, field):
    before = _row(tenant)

    with pytest.raises(ValidationError) as error:
        tenant_settings_update(tenant=tenant, changes=changes)

    assert field in error.value.message_dict
    assert _row(tenant) == before


def test_it_refuses_a_marketer_as_break_glass_admin_and_changes_nothing(tenant, marketer):
    before = _row(tenant)

    with pytest.raises(ValidationError) as error:
        tenant_settings_update(tenant=tenant, changes={"sso_break_glass": marketer.username})

    assert "is not an active admin" in error.value.message_dict["sso_break_glass"][0]
    assert _row(tenant) == before
