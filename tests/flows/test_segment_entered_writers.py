"""Every writer of what a segment reads notes the customers it changed, so a `segment_entered` flow
takes them in at the dispatcher's next tick, not at the sweep: the CSV import, the bulk API, flows'
own tag steps, unsubscribes and the preference centre, the admin's actions, a static segment's
members and the roll-up of opens and clicks. A batch is noted in one statement, not one per customer."""

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.importer import import_customers_csv
from customers.models import Customer
from customers.services import customers_tag
from flows.models import FlowSegmentChange
from flows.tasks import flows_tenant_work
from segments.models import Segment
from tests.tracking.conftest import HUMAN_AGENT, make_sent_campaign, preferences_path, unsubscribe_path
from tracking.hits import hit_record_click, hit_record_open
from tracking.rollup import hits_rollup

from .conftest import customer, entered_customers, make_active_flow, make_segment_flow, post_event

SZEGED = [{"field": "city", "operator": "=", "value": "Szeged"}]


def _notes(queries):
    """How many statements noted customers for the segment triggers."""
    table = FlowSegmentChange._meta.db_table
    return sum(1 for query in queries.captured_queries if f"INSERT INTO {table}" in query["sql"])


def _browser(tenant, user=None):
    browser = Client(HTTP_HOST=tenant.get_primary_domain().domain, HTTP_USER_AGENT=HUMAN_AGENT)
    if user is not None:
        browser.force_login(user)
    return browser


def test_it_enters_customers_a_csv_import_changes_or_creates_noted_once_per_chunk(tenant, api, tmp_path):
    flow_id = make_segment_flow(api, SZEGED)
    anna, bela = customer("anna@example.com", city="Pécs"), customer("bela@example.com", city="Pécs")
    path = tmp_path / "customers.csv"
    path.write_text("email,city\nanna@example.com,Szeged\nbela@example.com,Győr\ncili@example.com,Szeged\n")

    with CaptureQueriesContext(connection) as queries:
        report = import_customers_csv(path_or_file=path)
    flows_tenant_work()

    assert (report.created, report.updated) == (1, 2)
    assert _notes(queries) == 1
    cili = Customer.objects.get(email="cili@example.com")
    assert entered_customers(flow_id) == sorted([anna.pk, cili.pk])
    assert bela.pk not in entered_customers(flow_id)


def test_it_enters_customers_of_a_bulk_upsert_noted_in_one_statement(tenant, api):
    flow_id = make_segment_flow(api, SZEGED)
    anna = customer("anna@example.com", city="Pécs")

    with CaptureQueriesContext(connection) as queries:
        response = api.post(
            "/api/customers/bulk",
            [
                {"email": "anna@example.com", "city": "Szeged"},
                {"email": "cili@example.com", "city": "Szeged"},
                {"email": "dora@example.com", "city": "Győr"},
                {"email": "not an address"},
            ],
            format="json",
        )
    flows_tenant_work()

    assert response.status_code == 200, response.json()
    assert [item["status"] for item in response.json()["results"]] == [
        "updated",
        "created",
        "created",
        "error",
    ]
    assert _notes(queries) == 1
    assert entered_customers(flow_id) == sorted([anna.pk, Customer.objects.get(email="cili@example.com").pk])


def test_it_enters_customers_another_flows_tag_step_tags_or_untags_on_the_next_tick(tenant, api):
    vip_flow = make_segment_flow(api, [{"field": "tags", "operator": "contains", "value": "vip"}], "VIP")
    no_longer_new = make_segment_flow(
        api, [{"field": "tags", "operator": "doesNotContain", "value": "new"}], "Not new"
    )
    anna = customer("anna@example.com")
    customers_tag(customer_ids=[anna.pk], tag_names=["new"])
    make_active_flow(
        api,
        {
            "name": "Quiz",
            "trigger": {"type": "event", "name": "quiz.done"},
            "steps": [{"id": "t", "type": "tag", "add": ["vip"], "remove": ["new"]}],
            "frequency_cap_hours": 0,
        },
    )
    assert post_event(api, "e-1", anna, name="quiz.done").status_code == 202

    # The quiz flow's tag step, performed as she entered: vip on, new off.
    assert sorted(anna.tags.values_list("name", flat=True)) == ["vip"]
    assert (entered_customers(vip_flow), entered_customers(no_longer_new)) == ([], [])
    flows_tenant_work()  # the next tick, without any sweep

    assert entered_customers(vip_flow) == [anna.pk]
    assert entered_customers(no_longer_new) == [anna.pk]


def test_it_enters_customers_who_unsubscribe_by_link_or_in_the_preference_centre(tenant, api):
    flow_id = make_segment_flow(api, [{"field": "email_marketing", "operator": "=", "value": False}], "Left")
    sent = make_sent_campaign(emails=("ann@example.com", "bob@example.com", "cy@example.com"))
    ann, bob, cy = (recipient.customer for recipient in sent.recipients)
    browser = _browser(tenant)

    assert browser.post(unsubscribe_path(sent.recipients[0]), {"action": "unsubscribe"}).status_code == 200
    assert browser.post(preferences_path(bob), {"email_transactional": "on"}).status_code == 200
    flows_tenant_work()

    assert entered_customers(flow_id) == sorted([ann.pk, bob.pk])
    assert Customer.objects.get(pk=cy.pk).email_marketing  # untouched, not entered


def test_it_enters_customers_an_admin_resubscribes_or_tags_noted_once_per_action(tenant, api, admin_user):
    opted_in = make_segment_flow(api, [{"field": "email_marketing", "operator": "=", "value": True}], "In")
    gold = make_segment_flow(api, [{"field": "tags", "operator": "contains", "value": "gold"}], "Gold")
    ann, bob = (
        customer(email, consent=False, unsubscribed_at=timezone.now())
        for email in ("ann@example.com", "bob@example.com")
    )
    browser = _browser(tenant, admin_user)

    with CaptureQueriesContext(connection) as queries:
        response = browser.post(
            "/admin/customers/customer/",
            {
                "action": "resubscribe",
                "_selected_action": [ann.pk, bob.pk],
                "apply": "1",
                "reason": "Signed forms at the fair",
            },
        )
    assert response.status_code == 302
    assert _notes(queries) == 1
    browser.post(
        "/admin/customers/customer/",
        {"action": "add_tag", "_selected_action": [bob.pk], "apply": "1", "tag_name": "Gold"},
    )
    flows_tenant_work()

    assert entered_customers(opted_in) == sorted([ann.pk, bob.pk])
    assert entered_customers(gold) == [bob.pk]


def test_it_enters_customers_who_lose_tags_an_admin_deletes_noted_once(tenant, api, admin_user):
    ann, bob = customer("ann@example.com"), customer("bob@example.com")
    customers_tag(customer_ids=[ann.pk, bob.pk], tag_names=["old"])
    customers_tag(customer_ids=[ann.pk], tag_names=["stale"])
    flow_id = make_segment_flow(
        api,
        [
            {"field": "tags", "operator": "doesNotContain", "value": "old"},
            {"field": "tags", "operator": "doesNotContain", "value": "stale"},
        ],
        "Fresh",
    )
    tags = list(ann.tags.values_list("pk", flat=True))

    with CaptureQueriesContext(connection) as queries:
        response = _browser(tenant, admin_user).post(
            "/admin/customers/tag/",
            {"action": "delete_selected", "_selected_action": tags, "post": "yes"},
        )
    flows_tenant_work()

    assert response.status_code == 302
    assert _notes(queries) == 1
    assert entered_customers(flow_id) == sorted([ann.pk, bob.pk])


def test_it_enters_customers_added_to_a_static_segment(tenant, api):
    segment = Segment.objects.create(name="Fair visitors", kind="static")
    flow_id = make_segment_flow(api, name="Fair", segment=segment)
    anna, bela = customer("anna@example.com"), customer("bela@example.com")

    response = api.post(f"/api/segments/{segment.pk}/members", {"add": [anna.pk]}, format="json")
    flows_tenant_work()

    assert response.status_code == 200, response.json()
    assert entered_customers(flow_id) == [anna.pk]
    assert bela.pk not in entered_customers(flow_id)


def test_it_enters_customers_whose_first_open_or_click_the_rollup_records(tenant, api):
    sent = make_sent_campaign()
    ann, bob, cy = (recipient.customer for recipient in sent.recipients)
    opened = make_segment_flow(
        api, [{"field": "opened_campaign", "operator": "contains", "value": sent.campaign.pk}], "Opened"
    )
    clicked = make_segment_flow(
        api, [{"field": "clicked_campaign", "operator": "contains", "value": sent.campaign.pk}], "Clicked"
    )
    hit_record_open(tenant=tenant, recipient_id=sent.recipients[0].pk, user_agent=HUMAN_AGENT)
    hit_record_click(
        tenant=tenant, recipient_id=sent.recipients[1].pk, link_id=sent.links[0].pk, user_agent=HUMAN_AGENT
    )

    with CaptureQueriesContext(connection) as queries:
        hits_rollup()
    flows_tenant_work()

    assert _notes(queries) == 1
    assert entered_customers(opened) == sorted([ann.pk, bob.pk])
    assert entered_customers(clicked) == [bob.pk]
    assert cy.pk not in entered_customers(opened)
