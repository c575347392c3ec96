"""The tenant settings page: an admin edits the own tenant's sending settings on the tenant's host."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from campaigns.design import brand_defaults, design_compile
from campaigns.messages import CampaignComposer
from campaigns.models import Campaign
from tenancy.models import Tenant
from tenancy.tenant_settings import tenant_settings_update
from tests.admin.conftest import PUBLIC_HOST, host_client
from tests.conftest import verified_sender_domain

pytestmark = pytest.mark.django_db
URL = "/admin/tenancy/tenant/settings/"
VALID = {
    "from_name": "Teashop News",
    "from_email": "News@Teashop.example",
    "reply_to": "help@teashop.example",
    "postal_address": "Fő utca 1, 1011 Budapest",
    "send_rate_per_second": "25",
    "track_opens": "on",
    "machine_open_window_seconds": "15",
}


@pytest.fixture(autouse=True)
def teashop_verified(tenant):
    """teashop.example, the domain of VALID's sender, is a verified sender domain of tenant A."""
    return verified_sender_domain("teashop.example")


def _settings(tenant_id):
    return Tenant.objects.filter(pk=tenant_id).values(
        "from_name",
        "from_email",
        "reply_to",
        "postal_address",
        "send_rate_per_second",
        "track_opens",
        "track_clicks",
        "machine_open_window_seconds",
        "name",
    )[0]


def test_it_shows_the_own_tenants_settings(admin_client_a, tenant):
    response = admin_client_a.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="send_rate_per_second"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert f'<dd id="tenant-name">{tenant.name}</dd>' in html


def test_it_saves_the_settings_of_the_own_tenant_only(admin_client_a, tenant, other_tenant):
    before_b = _settings(other_tenant.pk)

    response = admin_client_a.post(URL, VALID)

    assert response.status_code == 302
    assert response["Location"] == URL
    assert _settings(tenant.pk) == {
        "from_name": "Teashop News",
        "from_email": "news@teashop.example",
        "reply_to": "help@teashop.example",
        "postal_address": "Fő utca 1, 1011 Budapest",
        "send_rate_per_second": 25,
        "track_opens": True,
        "track_clicks": False,
        "machine_open_window_seconds": 15,
        "name": tenant.name,
    }
    assert _settings(other_tenant.pk) == before_b


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("send_rate_per_second", "0", "greater than or equal to 1"),
        ("send_rate_per_second", "10001", "less than or equal to 10000"),
        ("send_rate_per_second", "fast", "Enter a whole number"),
        ("from_email", "not-an-address", "Enter a valid email address"),
        ("from_email", "news@elsewhere.example", "is not on a verified sender domain of this account"),
        ("from_email", "news@sub.teashop.example", "is not on a verified sender domain of this account"),
        ("machine_open_window_seconds", "99999", "Between 0 and 3600 seconds"),
        ("postal_address", "x" * 1001, "At most 1000 characters"),
        ("time_zone", "Mars/Olympus_Mons", "Select a valid choice"),
    ],
)
def test_it_refuses_bad_settings_naming_the_field_and_changes_nothing(
    admin_client_a, tenant, field, value, message
):
    before = _settings(tenant.pk)

    response = admin_client_a.post(URL, {**VALID, field: value})

    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert "The settings were not saved" in response.content.decode()
    assert _settings(tenant.pk) == before


def test_it_keeps_the_tenants_time_zone(admin_client_a, tenant):
    assert Tenant.objects.get(pk=tenant.pk).time_zone == "UTC"  # TENANT_DEFAULT_TIME_ZONE

    response = admin_client_a.post(URL, {**VALID, "time_zone": "Europe/Budapest"})

    assert response.status_code == 302
    assert Tenant.objects.get(pk=tenant.pk).time_zone == "Europe/Budapest"
    assert 'value="Europe/Budapest" selected' in admin_client_a.get(URL).content.decode()


def test_it_refuses_an_unknown_time_zone_in_the_service(tenant):
    with pytest.raises(ValidationError) as refused:
        tenant_settings_update(tenant=tenant, changes={"time_zone": "Europe/Atlantis"})

    assert "is not a time zone" in " ".join(refused.value.message_dict["time_zone"])
    assert Tenant.objects.get(pk=tenant.pk).time_zone == "UTC"


def test_it_says_how_to_fix_a_default_sender_that_is_refused(admin_client_a, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(from_email="news@legacy.example")

    html = admin_client_a.get(URL).content.decode()

    assert 'id="tenant-sender-problem"' in html
    assert "add legacy.example under Sender domains, publish its DNS records and verify it" in html
    Tenant.objects.filter(pk=tenant.pk).update(from_email="news@teashop.example")
    assert 'id="tenant-sender-problem"' not in admin_client_a.get(URL).content.decode()


def test_it_refuses_a_multi_line_sender_name_and_changes_nothing(admin_client_a, tenant):
    before = _settings(tenant.pk)

    response = admin_client_a.post(URL, {**VALID, "from_name": "Shop\r\nBcc: victim@x.test"})

    assert response.status_code == 400
    assert _settings(tenant.pk) == before


def test_it_ignores_fields_that_are_not_settings(admin_client_a, tenant):
    admin_client_a.post(URL, {**VALID, "name": "Hijacked", "schema_name": "public", "is_active": ""})

    row = Tenant.objects.get(pk=tenant.pk)
    assert (row.name, row.schema_name, row.is_active) == (tenant.name, tenant.schema_name, True)


def test_it_refuses_a_post_without_csrf_token_and_changes_nothing(admin_user, tenant):
    before = _settings(tenant.pk)
    client = host_client(admin_user, enforce_csrf_checks=True)

    response = client.post(URL, VALID)

    assert response.status_code == 403
    assert _settings(tenant.pk) == before


def test_it_refuses_a_marketer_and_changes_nothing(marketer_client, tenant):
    before = _settings(tenant.pk)

    response = marketer_client.post(URL, VALID)

    assert response.status_code == 403
    assert _settings(tenant.pk) == before


def test_it_sends_anonymous_users_to_the_login_page(tenant):
    response = host_client().get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_does_not_exist_on_the_public_host(django_user_model, tenant):
    connection.set_schema_to_public()
    operator = django_user_model.objects.create_superuser("op2", "op2@x.test", "pw-operator-2")

    assert host_client(operator, host=PUBLIC_HOST).get(URL).status_code == 404


def test_it_refuses_settings_that_are_not_tenant_settings_and_changes_nothing(tenant):
    before = _settings(tenant.pk)

    with pytest.raises(ValidationError) as error:
        tenant_settings_update(tenant=tenant, changes={"name": "Hijacked", "from_name": "Shop"})

    assert error.value.message_dict == {"name": ["This setting cannot be changed here."]}
    assert _settings(tenant.pk) == before


def test_it_refuses_settings_of_the_public_tenant(tenant):
    public = Tenant.objects.get(schema_name="public")

    with pytest.raises(ValidationError) as error:
        tenant_settings_update(tenant=public, changes={"from_name": "Platform"})

    assert "tenant" in error.value.message_dict
    assert Tenant.objects.get(pk=public.pk).from_name == ""


def test_it_reports_only_what_changed(tenant):
    first = tenant_settings_update(tenant=tenant, changes={"from_name": "Shop", "send_rate_per_second": 50})
    again = tenant_settings_update(tenant=tenant, changes={"from_name": " Shop ", "send_rate_per_second": 50})

    assert first == ["from_name"]
    assert again == []


def _composed_html(campaign, tenant):
    connection.set_tenant(tenant)
    composer = CampaignComposer(
        campaign=campaign,
        content={"subject": "Hi", "html": '<p><a href="https://shop.example/x">x</a></p>', "text": "x"},
        sender={"from_email": "news@shop.example", "from_name": "", "reply_to": "", "postal_address": ""},
        links={"https://shop.example/x": 1},
        base_url="http://tenant-a.localhost:8012",
    )
    message, _ = composer.compose(recipient_id=1, email="a@x.test", customer_id=1, customer={})
    return message.alternatives[0][0]


@pytest.mark.parametrize(("opens", "clicks"), [(True, True), (False, True), (True, False), (False, False)])
def test_it_switches_tracking_off_for_every_campaign_of_the_tenant(tenant, opens, clicks):
    Tenant.objects.filter(pk=tenant.pk).update(track_opens=opens, track_clicks=clicks)
    tenant.refresh_from_db()
    campaign = Campaign(pk=1, name="c", track_opens=True, track_clicks=True)

    html = _composed_html(campaign, tenant)

    assert ("/t/o/" in html) is opens
    assert ("/t/c/" in html) is clicks


def test_it_saves_the_brand_defaults_the_email_designs_use(admin_client_a, tenant):
    brand = {
        "brand_logo_url": "https://teashop.example/logo.png",
        "brand_primary_colour": "#0F766E",
        "brand_text_colour": "#111111",
        "brand_background_colour": "#fafaf9",
        "brand_font": "Georgia",
    }
    response = admin_client_a.post(URL, {**VALID, **brand})
    assert response.status_code == 302
    saved = Tenant.objects.get(pk=tenant.pk)
    assert [getattr(saved, name) for name in brand] == [
        "https://teashop.example/logo.png",
        "#0F766E",
        "#111111",
        "#fafaf9",
        "Georgia",
    ]
    page = admin_client_a.get(URL).content.decode()
    assert 'id="tenant-brand-settings"' in page
    design = {
        "blocks": [
            {"type": "header", "data": {}},
            {"type": "button", "data": {"label": "Go", "link": "https://a.example"}},
        ]
    }
    html = design_compile(design, brand=brand_defaults(saved))["html"]
    assert "https://teashop.example/logo.png" in html and "#0F766E" in html and "Georgia" in html


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("brand_primary_colour", "red", "A colour is written #rrggbb"),
        ("brand_text_colour", "#12345g", "A colour is written #rrggbb"),
        ("brand_font", "Comic Sans", "Select a valid choice"),
        ("brand_logo_url", "ftp://teashop.example/logo.png", "http(s) URL"),
        ("brand_logo_url", "javascript:alert(1)", "Enter a valid URL"),
    ],
)
def test_it_refuses_bad_brand_settings_naming_the_field(admin_client_a, tenant, field, value, message):
    before = Tenant.objects.filter(pk=tenant.pk).values(field)[0]
    response = admin_client_a.post(URL, {**VALID, field: value})
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert Tenant.objects.filter(pk=tenant.pk).values(field)[0] == before
