"""The dashboard's "Getting started" checklist: each step done or not from the account's own data, each
linking to where it is done; hidden for the account once dismissed, gone once everything is done."""

import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, EmailTemplate, SenderDomain
from campaigns.proofs import campaign_test_send
from customers.models import Customer
from segments.models import Segment
from tenancy.models import Tenant
from tests.admin.conftest import host_client
from tests.conftest import verified_sender_domain

pytestmark = pytest.mark.django_db
DISMISS_URL = "/admin/tenancy/tenant/onboarding/dismiss/"


@pytest.fixture
def new_account(tenant, locmem_mail):
    """Tenant A as a fresh account: no sender, nothing saved, no data."""
    Tenant.objects.filter(pk=tenant.pk).update(
        from_name="", from_email="", settings_saved_at=None, onboarding_dismissed_at=None, brand_logo_url=""
    )
    return tenant


def _steps(page):
    """{step: done} as the dashboard shows them."""
    return {
        key: done == "1"
        for key, done in re.findall(
            r'id="onboarding-step-([a-z]+)" data-step="[a-z]+" data-done="([01])"', page
        )
    }


def _campaign_ready_for_a_test():
    template = EmailTemplate.objects.create(
        name="T", kind="marketing", subject="Hi", html_body="<p>Hi</p>", text_body="Hi"
    )
    return Campaign.objects.create(name="First", subject="Hello", template=template, from_email="")


def test_it_lists_the_first_steps_of_a_new_account_sender_first(admin_client_a, new_account):
    page = admin_client_a.get("/admin/").content.decode()

    assert 'id="onboarding"' in page
    assert list(_steps(page)) == ["sender", "domain", "settings", "customers", "segment", "test", "campaign"]
    assert not any(_steps(page).values())
    assert "0 of 7 done" in page
    for url in (
        reverse("admin:tenant_settings"),
        reverse("admin:campaigns_senderdomain_changelist"),
        reverse("admin:customers_importjob_add"),
        reverse("admin:customers_customer_add"),
        reverse("admin:segments_segment_add"),
        reverse("admin:campaigns_campaign_add"),
    ):
        assert f'href="{url}"' in page, url
    assert 'id="dashboard-setup-sender"' in page  # the sender step asks for the address


def test_it_ticks_each_step_off_from_the_accounts_data(admin_client_a, new_account):
    Tenant.objects.filter(pk=new_account.pk).update(from_name="Teashop", from_email="news@teashop.example")
    verified_sender_domain("teashop.example")
    Customer.objects.create(email="ann@example.com", email_marketing=True)
    Segment.objects.create(name="Everyone", rules={"combinator": "and", "rules": []})

    steps = _steps(admin_client_a.get("/admin/").content.decode())

    assert steps == {
        "sender": True,
        "domain": True,
        "settings": False,
        "customers": True,
        "segment": True,
        "test": False,
        "campaign": False,
    }


def test_it_counts_a_pending_sender_domain_as_not_verified(admin_client_a, new_account):
    SenderDomain.objects.create(domain="pending.example")

    assert _steps(admin_client_a.get("/admin/").content.decode())["domain"] is False


def test_it_ticks_the_settings_step_once_an_admin_saved_the_settings(admin_client_a, new_account):
    verified_sender_domain("teashop.example")
    response = admin_client_a.post(
        reverse("admin:tenant_settings"),
        {
            "from_name": "Teashop",
            "from_email": "news@teashop.example",
            "send_rate_per_second": "25",
            "machine_open_window_seconds": "10",
            "currency": "EUR",
        },
    )
    assert response.status_code == 302

    steps = _steps(admin_client_a.get("/admin/").content.decode())

    assert steps["settings"] is True and steps["sender"] is True


def test_it_ticks_the_test_step_when_a_test_copy_went_out_and_links_the_draft(admin_client_a, new_account):
    verified_sender_domain("teashop.example")
    Tenant.objects.filter(pk=new_account.pk).update(from_name="Teashop", from_email="news@teashop.example")
    campaign = _campaign_ready_for_a_test()
    page = admin_client_a.get("/admin/").content.decode()
    assert _steps(page)["test"] is False
    assert f'href="{reverse("admin:campaigns_campaign_change", args=[campaign.pk])}"' in page

    results = campaign_test_send(campaign=campaign, emails=["me@teashop.example"])
    assert results[0]["sent"] and len(mail.outbox) == 1

    assert _steps(admin_client_a.get("/admin/").content.decode())["test"] is True


def test_it_ticks_the_first_campaign_only_once_one_went_out(admin_client_a, new_account):
    Campaign.objects.create(name="Draft", status="draft")
    Campaign.objects.create(name="Scheduled", status="scheduled", scheduled_at=timezone.now())
    assert _steps(admin_client_a.get("/admin/").content.decode())["campaign"] is False

    Campaign.objects.create(name="Sent", status="sent", sent_at=timezone.now())

    assert _steps(admin_client_a.get("/admin/").content.decode())["campaign"] is True


def test_it_disappears_when_everything_is_done(admin_client_a, new_account):
    verified_sender_domain("teashop.example")
    Tenant.objects.filter(pk=new_account.pk).update(
        from_name="Teashop", from_email="news@teashop.example", settings_saved_at=timezone.now()
    )
    Customer.objects.create(email="ann@example.com", email_marketing=True)
    Segment.objects.create(name="Everyone", rules={"combinator": "and", "rules": []})
    campaign = _campaign_ready_for_a_test()
    campaign_test_send(campaign=campaign, emails=["me@teashop.example"])
    page = admin_client_a.get("/admin/").content.decode()
    assert "6 of 7 done" in page

    Campaign.objects.filter(pk=campaign.pk).update(status="sent", sent_at=timezone.now())
    page = admin_client_a.get("/admin/").content.decode()

    assert 'id="onboarding"' not in page
    assert 'id="kpi-customers"' in page  # the dashboard itself is there
    assert Tenant.objects.get(pk=new_account.pk).onboarding_dismissed_at is None


def test_it_stays_hidden_for_the_account_once_dismissed(admin_client_a, marketer_client, new_account):
    response = admin_client_a.post(DISMISS_URL)

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert Tenant.objects.get(pk=new_account.pk).onboarding_dismissed_at is not None
    assert 'id="onboarding"' not in admin_client_a.get("/admin/").content.decode()
    page = marketer_client.get("/admin/").content.decode()
    assert 'id="onboarding"' not in page
    # Dismissed, the account still has no sender: the dashboard keeps asking for one.
    assert 'id="dashboard-setup-sender"' in admin_client_a.get("/admin/").content.decode()


def test_it_dismisses_only_by_post_with_a_csrf_token(admin_user, new_account):
    client = host_client(admin_user, enforce_csrf_checks=True)

    assert client.get(DISMISS_URL).status_code == 405
    assert client.post(DISMISS_URL).status_code == 403
    assert Tenant.objects.get(pk=new_account.pk).onboarding_dismissed_at is None


def test_it_dismisses_only_the_own_accounts_checklist(admin_client_a, new_account, other_tenant):
    Tenant.objects.filter(pk=other_tenant.pk).update(onboarding_dismissed_at=None)

    admin_client_a.post(DISMISS_URL)

    assert Tenant.objects.get(pk=other_tenant.pk).onboarding_dismissed_at is None


def test_it_tells_a_marketer_that_an_admin_sets_the_sender(marketer_client, new_account):
    page = marketer_client.get("/admin/").content.decode()

    assert 'id="onboarding-step-sender"' in page
    assert "(an admin does this in Settings)" in page
    assert reverse("admin:tenant_settings") not in page
