"""The block editor's field in the admin's template and campaign forms (the browser side is in
tests/admin/test_design_browser.py): saved designs are compiled, bad ones are refused on the form."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from campaigns.models import Campaign, EmailTemplate
from tests.conftest import verified_sender_domain

from .conftest import make_customers, static_segment

DESIGN = {
    "blocks": [
        {"type": "heading", "data": {"text": 'Hi {{ customer.first_name|default:"there" }}'}},
        {"type": "button", "data": {"label": "Shop", "link": "https://shop.example/"}},
        {"type": "footer", "data": {}},
    ]
}


@pytest.fixture
def browser(tenant, marketer):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(marketer)
    return client


def _template_form(**values):
    return {
        "name": "Designed",
        "kind": "marketing",
        "key": "",
        "subject": "Hello",
        "html_body": "",
        "text_body": "",
        **values,
    }


def test_it_shows_the_editor_with_its_pinned_files_and_the_variables_menu(browser):
    html = browser.get("/admin/campaigns/emailtemplate/add/").content.decode()
    for needle in (
        'id="design-editor"',
        'id="design-variables"',
        "campaigns/design/vendor/editorjs-2.31.7.umd.js",
        "campaigns/design/vendor/editorjs-drag-drop-1.1.16.js",
        "campaigns/design/editor.js",
        'value="{{ customer.first_name|default:&quot;there&quot; }}"',
        'id="design-preview-mobile"',
        'id="design-recipe"',
        '<option value="product_launch">Product launch</option>',
        'id="design-recipes" type="application/json"',
    ):
        assert needle in html, needle
    assert 'id="design-editor"' in browser.get("/admin/campaigns/campaign/add/").content.decode()


def test_it_saves_a_template_from_its_design_compiling_html_and_text(browser):
    response = browser.post("/admin/campaigns/emailtemplate/add/", _template_form(design=json.dumps(DESIGN)))
    assert response.status_code == 302, response.context["adminform"].form.errors
    template = EmailTemplate.objects.get(name="Designed")
    assert template.design == DESIGN
    assert (
        "@media" in template.html_body
        and 'Hi {{ customer.first_name|default:"there" }}' in template.text_body
    )


@pytest.mark.parametrize(
    ("design", "message"),
    [
        ('{"blocks": [{"type": "blink", "data": {}}]}', "unknown block type 'blink'"),
        ("{not json", "not valid JSON"),
        ('{"blocks": [{"type": "text", "data": {"text": "x", "font_size": 999}}]}', "font_size: must be"),
    ],
)
def test_it_refuses_a_bad_design_on_the_form_and_saves_nothing(browser, design, message):
    before = EmailTemplate.objects.count()
    response = browser.post("/admin/campaigns/emailtemplate/add/", _template_form(design=design))
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors["design"])
    assert EmailTemplate.objects.count() == before


def test_it_compiles_a_design_preview_for_a_customer(browser):
    customer = make_customers(1)[0]
    response = browser.post(
        "/admin/campaigns/emailtemplate/design-preview/",
        {"design": json.dumps(DESIGN), "subject": "Hi {{ customer.first_name }}", "customer": customer.email},
    )
    data = response.json()
    assert data["errors"] == {} and data["subject"] == "Hi First0"
    assert "Hi First0" in data["html"] and "@media" in data["html_body"]
    assert "{{ customer.first_name" in data["html_body"]  # the template, for the form's fields
    bad = browser.post(
        "/admin/campaigns/emailtemplate/design-preview/", {"design": '{"blocks": [{"type": "x"}]}'}
    )
    assert "unknown block type 'x'" in bad.json()["errors"]["design"][0]
    assert browser.get("/admin/campaigns/emailtemplate/design-preview/").status_code == 403


def test_it_refuses_the_design_preview_to_someone_without_access(tenant):
    nobody = get_user_model().objects.create_user(username="n@x.example", password="x" * 20, is_staff=True)
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(nobody)
    response = client.post("/admin/campaigns/emailtemplate/design-preview/", {"design": json.dumps(DESIGN)})
    assert response.status_code == 403


def test_it_saves_a_campaign_with_its_own_design(browser, tenant):
    verified_sender_domain("shop.example")
    segment = static_segment(make_customers(2))
    response = browser.post(
        "/admin/campaigns/campaign/add/",
        {
            "name": "Designed campaign",
            "subject": "Hi",
            "design": json.dumps(DESIGN),
            "html_body": "",
            "text_body": "",
            "segment": segment.pk,
            "from_email": "news@shop.example",
            "track_opens": "on",
            "track_clicks": "on",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get(name="Designed campaign")
    assert campaign.design == DESIGN and "@media" in campaign.html_body


def test_it_sends_a_test_copy_of_the_design_being_edited(browser, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = browser.post(
        "/admin/campaigns/emailtemplate/design-test/",
        {"design": json.dumps(DESIGN), "subject": "Hi {{ customer.first_name }}", "emails": "me@example.com"},
    )
    assert response.json() == {
        "errors": {},
        "results": [{"email": "me@example.com", "sent": True, "error": ""}],
    }
    [message] = mail.outbox
    assert message.subject == "[Test] Hi Alex"
    html = message.alternatives[0][0]
    assert "@media" in html and "Hi Alex" in html and "/v/test" in html
    assert not EmailTemplate.objects.filter(name="Design").exists()
    refused = browser.post(
        "/admin/campaigns/emailtemplate/design-test/",
        {"design": json.dumps(DESIGN), "subject": "Hi", "emails": "not-an-address"},
    )
    assert "emails" in refused.json()["errors"] and len(mail.outbox) == 1
