"""The "Sender domains" admin screen: a marketer adds a domain, sees the records to publish, verifies
it against the DNS (a real DNS server on loopback); the compose form and the operators' tenant form
refuse senders outside verified domains."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from campaigns import senders
from campaigns.models import Campaign, SenderDomain
from tenancy.admin import TenantChangeForm
from tenancy.models import Tenant
from tests.conftest import verified_sender_domain

LIST = "/admin/campaigns/senderdomain/"


@pytest.fixture
def browser(tenant, marketer):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(marketer)
    return client


def _change_url(sender_domain):
    return f"{LIST}{sender_domain.pk}/change/"


def test_it_adds_a_domain_and_shows_the_records_to_publish_with_copy_buttons(browser, tenant):
    response = browser.post(f"{LIST}add/", {"domain": "Shop.Example"})

    sender_domain = SenderDomain.objects.get()
    assert sender_domain.domain == "shop.example"
    assert response.status_code == 302 and response["Location"] == _change_url(sender_domain)
    html = browser.get(response["Location"]).content.decode()
    assert 'id="sender-domain-status" data-status="pending"' in html
    assert 'id="record-verification" data-status="unchecked"' in html
    assert "_crm-verification.shop.example" in html
    assert f"crm-verify={sender_domain.verification_token}" in html
    assert f"{sender_domain.dkim_selector}._domainkey.shop.example" in html
    assert f"v=DKIM1; k=rsa; p={sender_domain.dkim_public_key}" in html
    assert html.count('class="copy-name') == 2 and html.count('class="copy-value') == 2
    assert 'id="sender-domain-verify-submit"' in html
    assert sender_domain.dkim_private_key_encrypted not in html and "PRIVATE KEY" not in html
    assert "shop.example" in browser.get(LIST).content.decode()


@pytest.mark.parametrize("domain", ["", "not a domain", "news@shop.example", "localhost"])
def test_it_refuses_what_is_not_a_domain_and_adds_nothing(browser, tenant, domain):
    response = browser.post(f"{LIST}add/", {"domain": domain})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["domain"]
    assert not SenderDomain.objects.exists()


def test_it_refuses_a_domain_added_twice(browser, tenant):
    verified_sender_domain("shop.example")
    response = browser.post(f"{LIST}add/", {"domain": "SHOP.example"})
    assert response.context["adminform"].form.errors["domain"] == [
        "shop.example is already a sender domain of this account."
    ]
    assert SenderDomain.objects.count() == 1


def test_it_verifies_now_against_the_dns_and_shows_what_it_found(browser, tenant, dns_server):
    browser.post(f"{LIST}add/", {"domain": "shop.example"})
    sender_domain = SenderDomain.objects.get()
    verify = f"{LIST}{sender_domain.pk}/verify/"

    page = browser.post(verify, follow=True).content.decode()
    assert 'id="sender-domain-status" data-status="failed"' in page
    assert 'id="record-dkim" data-status="missing"' in page
    assert "No TXT record at this name yet." in page

    dns_server.publish_records(senders.sender_domain_records(sender_domain=sender_domain))
    page = browser.post(verify, follow=True).content.decode()
    assert "shop.example is verified: its addresses can send." in page
    assert 'id="sender-domain-status" data-status="verified"' in page
    assert 'id="record-verification" data-status="found"' in page
    assert SenderDomain.objects.get().status == "verified"


def test_it_refuses_verify_by_get_without_csrf_or_without_permission(tenant, marketer, admin_user):
    sender_domain = SenderDomain.objects.create(
        domain="shop.example", dkim_selector="crm1", dkim_public_key="x"
    )
    verify = f"{LIST}{sender_domain.pk}/verify/"
    host = tenant.get_primary_domain().domain

    get = Client(HTTP_HOST=host)
    get.force_login(marketer)
    assert get.get(verify).status_code == 403
    strict = Client(HTTP_HOST=host, enforce_csrf_checks=True)
    strict.force_login(marketer)
    assert strict.post(verify).status_code == 403
    viewer = get_user_model().objects.create_user(
        "viewer@tenant-a.localhost", password="x" * 12, is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_senderdomain"))
    read_only = Client(HTTP_HOST=host)
    read_only.force_login(viewer)
    assert read_only.get(_change_url(sender_domain)).status_code == 200
    assert (
        'id="sender-domain-verify-submit"' not in read_only.get(_change_url(sender_domain)).content.decode()
    )
    assert read_only.post(verify).status_code == 403
    sender_domain.refresh_from_db()
    assert (sender_domain.status, sender_domain.last_checked_at) == ("pending", None)


def test_it_refuses_to_delete_a_domain_in_use_and_keeps_it(browser, tenant):
    sender_domain = verified_sender_domain("shop.example")
    Campaign.objects.create(name="Live", from_email="news@shop.example", status="sending")

    response = browser.post(f"{LIST}{sender_domain.pk}/delete/", {"post": "yes"}, follow=True)

    assert "The campaign “Live” (sending) sends from shop.example" in response.content.decode()
    assert SenderDomain.objects.filter(pk=sender_domain.pk).exists()

    Campaign.objects.update(status="sent")
    browser.post(f"{LIST}{sender_domain.pk}/delete/", {"post": "yes"})
    assert not SenderDomain.objects.exists()


def test_it_shows_the_from_email_error_on_the_compose_form_and_saves_nothing(browser, tenant):
    verified_sender_domain("shop.example")
    data = {
        "name": "Spoof",
        "subject": "Hi",
        "html_body": "<p>Hi</p>",
        "from_email": "news@someone-else.example",
        "track_opens": "on",
        "track_clicks": "on",
    }
    response = browser.post("/admin/campaigns/campaign/add/", data)
    assert response.status_code == 200
    [message] = response.context["adminform"].form.errors["from_email"]
    assert message.startswith("'news@someone-else.example' is not on a verified sender domain")
    assert not Campaign.objects.exists()

    response = browser.post("/admin/campaigns/campaign/add/", {**data, "from_email": "news@shop.example"})
    assert response.status_code == 302
    assert Campaign.objects.get().from_email == "news@shop.example"


def test_it_refuses_an_operator_setting_a_tenants_sender_outside_its_verified_domains(tenant):
    verified_sender_domain("shop.example")
    connection.set_schema_to_public()
    row = Tenant.objects.get(pk=tenant.pk)
    data = {
        "name": row.name,
        "from_name": "",
        "reply_to": "",
        "postal_address": "",
        "send_rate_per_second": 50,
        "track_opens": "on",
        "track_clicks": "on",
        "machine_open_window_seconds": 10,
    }
    refused = TenantChangeForm(data={**data, "from_email": "news@other.example"}, instance=row)
    assert not refused.is_valid()
    assert list(refused.errors) == ["from_email"]
    assert "not on a verified sender domain" in refused.errors["from_email"][0]
    accepted = TenantChangeForm(data={**data, "from_email": "News@Shop.Example"}, instance=row)
    assert accepted.is_valid(), accepted.errors
    assert accepted.cleaned_data["from_email"] == "news@shop.example"
    assert Tenant.objects.get(pk=tenant.pk).from_email == ""
