"""What keeps the admin's pages fast at a million customers (bench/results/admin.md): no query per row,
recipient counts from the (campaign, status) index, big sent campaigns not recounted on every visit."""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from unfold import admin as unfold_admin
from unfold.templatetags import unfold_list

from campaigns.models import Campaign, CampaignRecipient
from campaigns.selectors import recipient_status_counts
from crm_project import dashboard
from crm_project.admin_lists import result_headers_once
from customers import pagination
from customers.models import Customer, Interaction, Order

pytestmark = pytest.mark.django_db


def _sent_campaign(name, recipients, *, sent_ago=timedelta(hours=2)):
    campaign = Campaign.objects.create(name=name, status="sent", sent_at=timezone.now() - sent_ago)
    for n in range(recipients):
        email = f"{name}-{n}@x.test"
        customer, _ = Customer.objects.get_or_create(email=email)
        CampaignRecipient.objects.create(
            campaign=campaign, customer=customer, email=email, status="delivered"
        )
    return campaign


def _recipient_counts_run(queries):
    return [
        q["sql"]
        for q in queries.captured_queries
        if re.search(r'FROM "?campaign_recipients"?', q["sql"]) and "count(" in q["sql"].lower()
    ]


def test_it_counts_the_campaign_lists_progress_in_one_statement(admin_client_a, tenant):
    for n in range(3):
        _sent_campaign(f"c{n}", 2)
    with CaptureQueriesContext(connection) as few:
        assert admin_client_a.get("/admin/campaigns/campaign/").status_code == 200
    for n in range(3, 12):
        _sent_campaign(f"c{n}", 2)
    cache.clear()
    with CaptureQueriesContext(connection) as many:
        page = admin_client_a.get("/admin/campaigns/campaign/").content.decode()

    assert len(many) == len(few)
    assert len(_recipient_counts_run(many)) == 1
    assert page.count("2/2 (100.0%)") == 12


def test_it_counts_recipients_from_the_campaign_status_index(tenant):
    campaign = _sent_campaign("big", 3, sent_ago=timedelta(minutes=1))
    with CaptureQueriesContext(connection) as queries:
        counts = recipient_status_counts(campaigns=[campaign])

    assert counts == {campaign.pk: {"delivered": 3}}
    assert "COUNT(*)" in _recipient_counts_run(queries)[0]


def test_it_recounts_a_campaign_still_sending_or_just_sent_but_not_a_settled_one(admin_client_a, tenant):
    cache.clear()
    settled = _sent_campaign("settled", 2)
    just_sent = _sent_campaign("just", 2, sent_ago=timedelta(minutes=2))
    admin_client_a.get("/admin/")

    with CaptureQueriesContext(connection) as queries:
        page = admin_client_a.get("/admin/").content.decode()

    counted = {
        int(pk)
        for sql in _recipient_counts_run(queries)
        for ids in re.findall(r'"campaign_id" IN \(([^)]*)\)', sql)
        for pk in ids.split(",")
    }
    assert just_sent.pk in counted and settled.pk not in counted
    assert f'data-campaign="{settled.pk}"' in page


def test_it_reads_a_customers_timeline_once_per_page(admin_client_a, tenant):
    customer = Customer.objects.create(email="ann@example.com")
    Interaction.objects.create(customer=customer, kind="note", body="Called", occurred_at=timezone.now())

    with CaptureQueriesContext(connection) as queries:
        page = admin_client_a.get(f"/admin/customers/customer/{customer.pk}/change/?edit=1").content.decode()

    timeline_reads = [q for q in queries.captured_queries if 'FROM "customers_interaction"' in q["sql"]]
    assert "Called" in page
    # The profile's timeline and consent history, and the edit form's activity field: once each.
    assert len(timeline_reads) <= 3


def test_it_builds_a_change_lists_headers_once_per_page(admin_client_a, tenant):
    for n in range(5):
        Customer.objects.create(email=f"c{n}@example.com", city="Szeged")

    page = admin_client_a.get("/admin/customers/customer/").content.decode()

    assert unfold_list.result_headers is result_headers_once
    assert page.count("c0@example.com") >= 1 and "Szeged" in page


def test_it_does_not_recount_a_settled_campaign_on_its_pages_but_the_api_always_counts(
    admin_client_a, api, tenant
):
    cache.clear()
    campaign = _sent_campaign("settled", 3)
    stats_url = f"/admin/tracking/campaignreport/{campaign.pk}/stats/"
    page_url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    admin_client_a.get(stats_url)

    for url in (stats_url, page_url):
        with CaptureQueriesContext(connection) as queries:
            assert admin_client_a.get(url).status_code == 200
        assert _recipient_counts_run(queries) == [], url
    with CaptureQueriesContext(connection) as queries:
        body = api.get(f"/api/campaigns/{campaign.pk}/stats").json()
    assert len(_recipient_counts_run(queries)) == 1
    assert body["recipients"] == 3


def test_it_renders_each_rows_checkbox_and_yes_no_icons_as_unfold_does(admin_client_a, tenant):
    yes = Customer.objects.create(email="yes@example.com", email_marketing=True)
    no = Customer.objects.create(email="no@example.com", email_marketing=False)

    page = admin_client_a.get("/admin/customers/customer/").content.decode()

    for customer in (yes, no):
        expected = unfold_admin.checkbox.render("_selected_action", str(customer.pk))
        assert expected in page
    assert "check_small" in page and "close_small" in page


def test_it_shows_a_big_accounts_last_figures_while_a_worker_recounts_them(
    admin_client_a, tenant, monkeypatch, django_capture_on_commit_callbacks, beat_in_process
):
    cache.clear()
    # Every account counts as big here (a million customers would not fit a test).
    monkeypatch.setattr(dashboard, "RECOUNT_IN_BACKGROUND_ABOVE", -1)
    Customer.objects.create(email="first@example.com")
    with django_capture_on_commit_callbacks() as first_count:
        page = admin_client_a.get("/admin/")
    assert page.context["dashboard"]["customers"]["counting"]  # never counted: not in the request
    assert 'id="kpi-counting"' in page.content.decode()
    first_count[0]()  # the worker's turn (Celery's eager mode: in this process)
    first = admin_client_a.get("/admin/").context["dashboard"]["customers"]
    assert first["total"] == 1 and not first.get("recounting")

    Customer.objects.create(email="second@example.com")
    with django_capture_on_commit_callbacks() as recount:
        page = admin_client_a.get("/admin/")
    shown = page.context["dashboard"]["customers"]
    assert shown["total"] == 1 and shown["recounting"]  # the last figures, without waiting
    assert 'id="kpi-recounting"' in page.content.decode()
    assert len(recount) == 1
    with django_capture_on_commit_callbacks() as again:
        admin_client_a.get("/admin/")
    assert again == []  # one recount at a time

    recount[0]()

    fresh = admin_client_a.get("/admin/").context["dashboard"]["customers"]
    assert fresh["total"] == 2 and not fresh.get("recounting")


def test_it_says_about_when_the_list_counts_by_the_planners_estimate(admin_client_a, tenant, monkeypatch):
    for n in range(3):
        Customer.objects.create(email=f"c{n}@example.com", city="Szeged")
    exact = admin_client_a.get("/admin/customers/customer/?city=Szeged").content.decode()
    assert "3 results" in exact and 'id="result-count-estimated"' not in exact

    # A list too large to count (a million customers would not fit a test): the planner's figure.
    monkeypatch.setattr(pagination, "ESTIMATE_ABOVE", -1)
    estimated = admin_client_a.get("/admin/customers/customer/?city=Szeged").content.decode()

    assert 'id="result-count-estimated"' in estimated
    assert re.search(r"about [\d,]+ results?", estimated)


def test_it_shows_a_customers_latest_orders_whatever_their_number(admin_client_a, tenant):
    customer = Customer.objects.create(email="loyal@example.com")

    def page_with(orders):
        for n in range(Order.objects.filter(customer=customer).count(), orders):
            Order.objects.create(
                external_id=f"o-{n}",
                number=f"N{n:03d}",
                customer=customer,
                total=10,
                placed_at=timezone.now(),
            )
        with CaptureQueriesContext(connection) as queries:
            html = admin_client_a.get(
                f"/admin/customers/customer/{customer.pk}/change/?edit=1"
            ).content.decode()
        return html, len(queries)

    few, few_queries = page_with(2)
    many, many_queries = page_with(40)

    assert many_queries == few_queries
    assert many.count("N0") == 5  # the latest five on the profile, then "All orders"
    assert "All orders" in many and "N001" in few
