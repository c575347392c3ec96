"""Every state change in the admin is a POST with a CSRF token; a GET never changes anything, and
user data shows as text on every page (Django's test client; the browser tests check the DOM too)."""

from html.parser import HTMLParser

import pytest
from django.core import mail
from django.utils import timezone

from campaigns.models import Campaign, EmailTemplate
from customers.models import Customer, CustomerTag, Tag
from segments.models import Segment, SegmentMember
from tests.admin.conftest import host_client

pytestmark = pytest.mark.django_db
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
# GET forms that only read: changelist search and filters, the template preview's customer picker.
READ_ONLY_GET_FORMS = {
    None,
    "changelist-search",
    "changelist-filters",
    "filter-form",
    "template-preview-form",
}
EVIL_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


class Forms(HTMLParser):
    """The forms of a page: method and whether a CSRF token field is inside."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"method": (attrs.get("method") or "get").lower(), "id": attrs.get("id"), "csrf": False}
            )
        elif tag == "input" and attrs.get("name") == "csrfmiddlewaretoken" and self.forms:
            self.forms[-1]["csrf"] = True


@pytest.fixture
def world(tenant, verified_domain):
    evil = Customer.objects.create(
        email="xss@example.com",
        external_id=EVIL,
        first_name=EVIL,
        last_name=EVIL,
        phone=EVIL[:50],
        city=EVIL,
        attributes={"note": EVIL},
        email_marketing=True,
    )
    plain = Customer.objects.create(email="plain@example.com", first_name="Plain", email_marketing=True)
    CustomerTag.objects.create(customer=evil, tag=Tag.objects.create(name=EVIL[:100]))
    segment = Segment.objects.create(name=EVIL[:200], kind="static")
    SegmentMember.objects.create(segment=segment, customer=evil)
    SegmentMember.objects.create(segment=segment, customer=plain)
    template = EmailTemplate.objects.create(
        name=EVIL, subject="Hi {{ customer.first_name }}", html_body="<p>Hi {{ customer.first_name }}</p>"
    )
    campaign = Campaign.objects.create(
        name=EVIL, subject="Hi", template=template, segment=segment, from_email="news@shop.example"
    )
    return {
        "evil": evil,
        "segment": segment,
        "template": template,
        "campaign": campaign,
        "sender_domain": verified_domain,
    }


def _pages(world):
    evil, campaign = world["evil"], world["campaign"]
    return [
        "/admin/",
        "/admin/customers/customer/",
        f"/admin/customers/customer/?q={evil.email}",
        f"/admin/customers/customer/{evil.pk}/change/",
        "/admin/customers/tag/",
        "/admin/segments/segment/",
        f"/admin/segments/segment/{world['segment'].pk}/change/",
        "/admin/campaigns/emailtemplate/",
        f"/admin/campaigns/emailtemplate/{world['template'].pk}/change/",
        f"/admin/campaigns/emailtemplate/{world['template'].pk}/preview/?customer={evil.pk}",
        "/admin/campaigns/campaign/",
        f"/admin/campaigns/campaign/{campaign.pk}/change/",
        f"/admin/campaigns/campaign/{campaign.pk}/action/send/",
        f"/admin/campaigns/campaign/{campaign.pk}/action/cancel/",
        "/admin/campaigns/senderdomain/",
        "/admin/campaigns/senderdomain/add/",
        f"/admin/campaigns/senderdomain/{world['sender_domain'].pk}/change/",
        "/admin/tracking/campaignreport/",
        "/admin/tenancy/tenant/settings/",
        "/admin/auth/user/",
    ]


def test_it_puts_a_csrf_token_in_every_post_form_and_no_change_behind_a_get_form(admin_client_a, world):
    for path in _pages(world):
        response = admin_client_a.get(path)
        assert response.status_code == 200, path
        parser = Forms()
        parser.feed(response.content.decode())
        for form in parser.forms:
            if form["method"] == "post":
                assert form["csrf"], f"{path}: form {form['id']} has no CSRF token"
            else:
                # GET forms only search and filter (changelists, the sidebar search, previews).
                assert form["id"] in READ_ONLY_GET_FORMS, f"{path}: GET form {form['id']}"


def test_it_shows_html_in_user_data_as_text_on_every_page(admin_client_a, world):
    for path in [p for p in _pages(world) if "/preview/" not in p]:
        html = admin_client_a.get(path).content.decode()
        assert "<script>alert(" not in html, path
        assert "<img src=x" not in html, path
    for path in _pages(world)[:4]:  # dashboard, list, search, detail: the data is there, as text
        assert EVIL_ESCAPED in admin_client_a.get(path).content.decode(), path


def test_it_changes_nothing_on_get_of_a_campaign_action(admin_client_a, world):
    campaign = world["campaign"]

    for action in ("send", "cancel", "schedule"):
        response = admin_client_a.get(f"/admin/campaigns/campaign/{campaign.pk}/action/{action}/")
        assert response.status_code == 200
        assert 'id="confirm-form" method="post"' in response.content.decode()

    campaign.refresh_from_db()
    assert campaign.status == "draft"
    assert campaign.recipients.count() == 0


def test_it_sends_no_test_copy_on_get(admin_client_a, world):
    response = admin_client_a.get(f"/admin/campaigns/campaign/{world['campaign'].pk}/test/?emails=me@x.test")

    assert response.status_code == 403
    assert mail.outbox == []


def test_it_logs_out_only_by_post(admin_client_a):
    assert admin_client_a.get("/admin/logout/").status_code == 405
    assert admin_client_a.get("/admin/").status_code == 200


@pytest.mark.parametrize(
    "kind",
    ["send", "cancel", "test", "tag", "segment_preview", "settings", "template_test"],
)
def test_it_refuses_a_state_change_without_csrf_token_and_nothing_changes(admin_user, world, kind):
    client = host_client(admin_user, enforce_csrf_checks=True)
    campaign, evil = world["campaign"], world["evil"]
    requests = {
        "send": (f"/admin/campaigns/campaign/{campaign.pk}/action/send/", {}),
        "cancel": (f"/admin/campaigns/campaign/{campaign.pk}/action/cancel/", {}),
        "test": (f"/admin/campaigns/campaign/{campaign.pk}/test/", {"emails": "me@x.test"}),
        "tag": (
            "/admin/customers/customer/",
            {"action": "add_tag", "_selected_action": [evil.pk], "apply": "1", "tag_name": "sneaky"},
        ),
        "segment_preview": ("/admin/segments/segment/preview/", {}),
        "settings": ("/admin/tenancy/tenant/settings/", {"send_rate_per_second": "1"}),
        "template_test": (
            f"/admin/campaigns/emailtemplate/{world['template'].pk}/preview/",
            {"emails": "me@x.test"},
        ),
    }
    path, data = requests[kind]

    response = client.post(path, data)

    assert response.status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == "draft"
    assert campaign.recipients.count() == 0
    assert mail.outbox == []
    assert not Tag.objects.filter(name="sneaky").exists()


def test_it_escapes_user_data_in_the_segment_builders_live_sample(admin_client_a, world):
    response = admin_client_a.post(
        "/admin/segments/segment/preview/",
        {
            "rules": {
                "combinator": "and",
                "rules": [{"field": "email", "operator": "=", "value": "xss@example.com"}],
            }
        },
        content_type="application/json",
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["count"] == 1


def test_it_keeps_a_scheduled_campaign_visible_and_escaped_on_the_dashboard(admin_client_a, world):
    Campaign.objects.filter(pk=world["campaign"].pk).update(
        status="scheduled", scheduled_at=timezone.now() + timezone.timedelta(days=1)
    )

    html = admin_client_a.get("/admin/").content.decode()

    assert EVIL_ESCAPED in html
    assert "<script>alert(" not in html


def test_it_shows_html_in_user_data_as_text_on_the_template_preview(admin_client_a, world):
    path = f"/admin/campaigns/emailtemplate/{world['template'].pk}/preview/?customer={world['evil'].pk}"

    html = admin_client_a.get(path).content.decode()

    assert "<script>alert(" not in html
    assert "<img src=x" not in html
    # The HTML preview sits in a sandboxed iframe's srcdoc: attribute-escaped, nothing breaks out.
    srcdoc = html.split('srcdoc="', 1)[1].split('"', 1)[0]
    assert "<" not in srcdoc


def test_it_checks_off_a_test_copy_of_the_current_content_before_sending(
    admin_client_a, world, settings, locmem_mail
):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    campaign = world["campaign"]
    confirm = f"/admin/campaigns/campaign/{campaign.pk}/action/send/"

    assert 'id="check-test" data-ok="false"' in admin_client_a.get(confirm).content.decode()
    assert 'id="check-unsubscribe" data-ok="true"' in admin_client_a.get(confirm).content.decode()

    admin_client_a.post(f"/admin/campaigns/campaign/{campaign.pk}/test/", {"emails": "me@x.test"})
    assert len(mail.outbox) == 1
    assert 'id="check-test" data-ok="true"' in admin_client_a.get(confirm).content.decode()

    Campaign.objects.filter(pk=campaign.pk).update(subject="Changed after the test")
    assert 'id="check-test" data-ok="false"' in admin_client_a.get(confirm).content.decode()
