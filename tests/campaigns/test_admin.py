"""The marketers' admin: compose with preview and audience count, confirm actions, progress, recipients."""

import pytest
from django.core import mail
from django.test import Client

from campaigns.models import Campaign, CampaignRecipient, EmailTemplate

from .conftest import make_campaign, make_customers, static_segment

pytestmark = pytest.mark.usefixtures("locmem_mail")


@pytest.fixture
def browser(tenant, marketer):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(marketer)
    return client


def test_it_shows_the_compose_page_with_preview_audience_and_actions(browser, tenant):
    campaign = make_campaign(static_segment(make_customers(2)))
    page = browser.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    for dom_id in (
        'id="campaign-status"',
        'id="campaign-actions"',
        'id="action-send"',
        'id="action-schedule"',
        'id="action-cancel"',
        'id="campaign-audience-count"',
        'id="campaign-preview-frame"',
        'id="campaign-test-form"',
    ):
        assert dom_id in html, dom_id
    assert 'id="action-pause"' not in html
    assert browser.get("/admin/campaigns/campaign/add/").status_code == 200
    assert browser.get("/admin/campaigns/campaign/").status_code == 200


def test_it_counts_the_audience_and_renders_a_live_preview(browser, tenant):
    customers = make_customers(3)
    make_customers(2, prefix="nc", consent=False)
    segment = static_segment(customers + list(make_customers(1, prefix="x", consent=False)))
    response = browser.get(f"/admin/campaigns/campaign/audience/?segment={segment.pk}")
    assert response.json() == {"count": 3}
    assert browser.get("/admin/campaigns/campaign/audience/?segment=abc").status_code == 400

    template = EmailTemplate.objects.create(
        name="T", subject="Hi {{ customer.first_name }}", html_body="<b>{{ customer.last_name }}</b>"
    )
    response = browser.post(
        "/admin/campaigns/campaign/live-preview/",
        {"template": template.pk, "subject": "", "html_body": "", "customer": customers[1].email},
    )
    assert response.json() == {
        "subject": "Hi First1",
        "html": "<b>Last1</b>",
        "text": "**Last1**\n",
        "from_name": "",
        "variant": "",
        "customer": "c1@example.com",
        "errors": {},
    }
    response = browser.post(
        "/admin/campaigns/campaign/live-preview/", {"subject": "x", "html_body": "{% if %}"}
    )
    assert list(response.json()["errors"]) == ["html_body"]


def test_it_sends_after_confirmation_and_shows_the_progress(browser, tenant):
    campaign = make_campaign(static_segment(make_customers(2)))
    confirm = browser.get(f"/admin/campaigns/campaign/{campaign.pk}/action/send/")
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert 'id="confirm-form"' in html and 'id="confirm-checklist"' in html
    assert 'id="check-audience" data-ok="true"' in html
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"  # a GET changes nothing

    response = browser.post(f"/admin/campaigns/campaign/{campaign.pk}/action/send/")
    assert response.status_code == 302
    assert Campaign.objects.get(pk=campaign.pk).status == "sending"
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 2
    page = browser.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert 'id="campaign-progress"' in page and 'id="action-pause"' in page
    assert browser.get(f"/admin/campaigns/campaign/{campaign.pk}/progress/").json()["pending"] == 2
    recipients = browser.get(f"/admin/campaigns/campaignrecipient/?campaign__id__exact={campaign.pk}")
    assert recipients.status_code == 200
    assert "c0@example.com" in recipients.content.decode()


def test_it_shows_an_illegal_action_as_a_message_and_changes_nothing(browser, tenant):
    campaign = make_campaign(static_segment(make_customers(1)))
    response = browser.post(f"/admin/campaigns/campaign/{campaign.pk}/action/pause/", follow=True)
    assert response.status_code == 200
    assert "A campaign that is draft cannot be paused." in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_it_refuses_to_send_an_empty_audience_with_a_message(browser, tenant):
    campaign = make_campaign(static_segment(make_customers(1, consent=False)))
    confirm = browser.get(f"/admin/campaigns/campaign/{campaign.pk}/action/send/").content.decode()
    assert 'id="check-audience" data-ok="false"' in confirm
    response = browser.post(f"/admin/campaigns/campaign/{campaign.pk}/action/send/", follow=True)
    assert "Nobody would receive this campaign" in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 0


def test_it_schedules_from_the_confirmation_page(browser, tenant):
    campaign = make_campaign(static_segment(make_customers(1)))
    response = browser.post(
        f"/admin/campaigns/campaign/{campaign.pk}/action/schedule/", {"scheduled_at": "2099-01-31 09:00"}
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == "scheduled"
    assert campaign.scheduled_at.isoformat() == "2099-01-31T09:00:00+00:00"
    past = make_campaign(static_segment(make_customers(1, prefix="p")))
    response = browser.post(
        f"/admin/campaigns/campaign/{past.pk}/action/schedule/",
        {"scheduled_at": "2001-01-01 09:00"},
        follow=True,
    )
    assert "Send at: Must be in the future" in response.content.decode()
    assert Campaign.objects.get(pk=past.pk).status == "draft"


def test_it_refuses_a_broken_template_in_the_form_and_previews_a_saved_one(browser, tenant):
    response = browser.post(
        "/admin/campaigns/emailtemplate/add/",
        {
            "name": "Bad",
            "kind": "marketing",
            "key": "",
            "subject": "S",
            "html_body": "x\n{% load static %}",
            "text_body": "",
        },
    )
    assert response.status_code == 200
    assert "Line 2: Invalid block tag on line 2: &#x27;load&#x27;" in response.content.decode()
    assert not EmailTemplate.objects.filter(name="Bad").exists()

    response = browser.post(
        "/admin/campaigns/emailtemplate/add/",
        {
            "name": "Good",
            "kind": "marketing",
            "key": "",
            "subject": "Hi {{ customer.first_name }}",
            "html_body": "<p>x</p>",
            "text_body": "",
        },
    )
    assert response.status_code == 302
    template = EmailTemplate.objects.get(name="Good")
    customer = make_customers(1)[0]
    page = browser.get(f"/admin/campaigns/emailtemplate/{template.pk}/preview/?customer={customer.email}")
    html = page.content.decode()
    assert 'id="preview-subject">Hi First0<' in html
    assert 'id="preview-frame"' in html and 'id="test-send-form"' in html
    response = browser.post(
        f"/admin/campaigns/emailtemplate/{template.pk}/preview/", {"emails": "me@example.com"}
    )
    assert response.status_code == 302
    assert [m.subject for m in mail.outbox] == ["[Test] Hi Alex"]


def test_it_refuses_to_delete_a_sent_campaign_in_the_admin(client, admin_user, tenant):
    sent = Campaign.objects.create(name="Gone out", subject="Hi", status="sent")
    client.force_login(admin_user)
    response = client.post(
        f"/admin/campaigns/campaign/{sent.pk}/delete/", {"post": "yes"}, HTTP_HOST="tenant-a.localhost"
    )
    assert response.status_code == 403
    assert Campaign.objects.filter(pk=sent.pk).exists()
