"""The A/B part of the campaign composer: variants side by side, the metric and the wait; the same
validation as the API, each error on its field; a running test is shown, not editable."""

import pytest
from django.test import Client
from django.urls import reverse

from campaigns import lifecycle
from campaigns.abtests import campaign_ab_decide
from campaigns.models import Campaign

from .conftest import make_campaign, make_customers, static_segment


@pytest.fixture(autouse=True)
def locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def browser(tenant, marketer):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(marketer)
    return client


def compose(segment, **fields):
    return {
        "name": "Spring",
        "template": "",
        "subject": "Spring",
        "html_body": "<p>Hi</p>",
        "text_body": "",
        "segment": segment.pk,
        "exclude_segment": "",
        "from_email": "",
        "from_name": "",
        "reply_to": "",
        "track_opens": "on",
        "track_clicks": "on",
        "scheduled_at": "",
        **fields,
    }


AB = {
    "ab_enabled": "on",
    "variant_A_subject": "Spring sale",
    "variant_B_subject": "A treat for you",
    "variant_B_from_name": "Anna",
    "variant_C_html_body": "<p>Other</p>",
    "ab_metric": "click_rate",
    "ab_test_percent": "30",
    "ab_wait_hours": "2.5",
    "ab_min_confidence": "90",
}


def test_it_shows_the_variants_side_by_side(browser, tenant):
    page = browser.get("/admin/campaigns/campaign/add/").content.decode()
    assert 'id="ab-test"' in page and 'id="ab-variants"' in page
    for key in "ABCD":
        assert f'id="ab-variant-{key}"' in page and f'id="id_variant_{key}_subject"' in page
    assert 'id="id_ab_metric"' in page and 'id="id_ab_wait_hours"' in page


def test_it_saves_a_test_from_the_composer_and_shows_it_again(browser, tenant):
    segment = static_segment(make_customers(3))
    response = browser.post("/admin/campaigns/campaign/add/", compose(segment, **AB))
    assert response.status_code == 302, response.content.decode()[-3000:]
    campaign = Campaign.objects.get(name="Spring")
    assert campaign.variants == [
        {"key": "A", "subject": "Spring sale"},
        {"key": "B", "subject": "A treat for you", "from_name": "Anna"},
        {"key": "C", "html_body": "<p>Other</p>"},
    ]
    assert campaign.ab_test == {
        "test_percent": 30,
        "metric": "click_rate",
        "wait_seconds": 9000,
        "min_confidence": 0.9,
    }

    page = browser.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert 'value="A treat for you"' in page and 'name="ab_enabled"' in page and "checked" in page

    off = browser.post(f"/admin/campaigns/campaign/{campaign.pk}/change/", compose(segment))
    assert off.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.variants, campaign.ab_test) == ([], None)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"variant_B_subject": "", "variant_B_from_name": ""}, "variant_B_subject"),
        ({"variant_A_subject": "{% if %}"}, "variant_A_subject"),
        ({"ab_test_percent": "95"}, "ab_test_percent"),
        ({"ab_wait_hours": "0"}, "ab_wait_hours"),
        ({"ab_metric": "vibes"}, "ab_metric"),
    ],
)
def test_it_refuses_a_bad_test_on_its_field_and_saves_nothing(browser, tenant, change, field):
    segment = static_segment(make_customers(2))
    response = browser.post("/admin/campaigns/campaign/add/", compose(segment, **{**AB, **change}))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Campaign.objects.filter(name="Spring").exists()


def test_it_shows_a_running_test_without_letting_it_change(browser, tenant):
    campaign = make_campaign(
        static_segment(make_customers(10)),
        variants=[{"key": "A", "subject": "x"}, {"key": "B", "subject": "y"}],
        ab_test={"test_percent": 20, "metric": "open_rate", "wait_seconds": 3600, "min_confidence": 0.95},
    )
    lifecycle.campaign_send_now(campaign=campaign)
    page = browser.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert 'id="id_variant_A_subject"' in page and "disabled" in page


def test_it_shows_the_variants_winner_and_probabilities_on_the_stats_page(browser, tenant):
    campaign = make_campaign(
        static_segment(make_customers(40)),
        variants=[{"key": "A", "subject": "x"}, {"key": "B", "subject": "y"}],
        ab_test={"test_percent": 50, "metric": "open_rate", "wait_seconds": 3600, "min_confidence": 0.95},
    )
    lifecycle.campaign_send_now(campaign=campaign)
    campaign_ab_decide(campaign=campaign, key="B")

    page = browser.get(reverse("admin:tracking_campaign_stats", args=[campaign.pk])).content.decode()

    assert 'id="ab-results"' in page
    assert 'data-winner="B" data-decided-by="manual"' in page
    assert 'data-variant="A"' in page and 'data-variant="B"' in page
    assert 'data-type="line"' in page  # the probabilities over time


# --- the live preview, variant by variant -------------------------------------------------------------

PREVIEW_FORM = {
    "name": "Spring",
    "template": "",
    "subject": "Spring for {{ customer.first_name }}",
    "html_body": "<p>Our spring teas, {{ customer.first_name }}</p>",
    "text_body": "",
    "from_email": "",
    "from_name": "Tea Shop",
    "variant_A_subject": "Spring sale for {{ customer.first_name }}",
    "variant_B_from_name": "Anna from Tea Shop",
    "variant_B_html_body": "<p>A treat for you, {{ customer.first_name }}</p>",
    "variant_C_subject": "",
}


def preview(browser, **fields):
    return browser.post(reverse("admin:campaigns_campaign_live_preview"), {**PREVIEW_FORM, **fields})


def test_it_previews_each_variant_as_its_recipients_get_it(browser, tenant):
    make_customers(1, prefix="pv")  # First0 Last0

    own, a, b = (preview(browser, variant=key, customer="pv0@example.com").json() for key in ("", "A", "B"))

    assert (own["subject"], own["from_name"], own["variant"]) == ("Spring for First0", "Tea Shop", "")
    assert "Our spring teas, First0" in own["html"]
    # A sets its subject only: the campaign's content and from name.
    assert (a["subject"], a["from_name"], a["variant"]) == ("Spring sale for First0", "Tea Shop", "A")
    assert "Our spring teas, First0" in a["html"] and "A treat" not in a["html"]
    # B sets its content and from name: the campaign's subject.
    assert (b["subject"], b["from_name"], b["variant"]) == ("Spring for First0", "Anna from Tea Shop", "B")
    assert "A treat for you, First0" in b["html"] and "Our spring teas" not in b["html"]
    assert own["errors"] == a["errors"] == b["errors"] == {}


def test_it_shows_a_variants_template_error_in_the_preview(browser, tenant):
    response = preview(browser, variant="A", variant_A_subject="{% if %}")
    assert response.status_code == 200
    assert "subject" in response.json()["errors"] and "html" not in response.json()


def test_it_refuses_to_preview_a_variant_the_test_cannot_have(browser, tenant):
    before = Campaign.objects.count()
    response = preview(browser, variant="E")
    assert response.status_code == 400
    assert "variant" in response.json()["errors"] and "html" not in response.json()
    assert Campaign.objects.count() == before


def test_it_offers_the_variant_switch_beside_the_preview(browser, tenant):
    page = browser.get("/admin/campaigns/campaign/add/").content.decode()
    assert 'id="campaign-preview-variant"' in page and 'id="campaign-preview-from"' in page
    for key in "ABCD":
        assert f'<option value="{key}">Variant {key}</option>' in page
