"""GDPR erase removes the customer's personal data everywhere it was copied, and nothing brings it back:
opens, clicks, webhooks and imports after the erasure store nothing of the person."""

import base64
import json
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.utils import timezone

from campaigns import editing, lifecycle, sender
from campaigns.models import Campaign, CampaignLink, CampaignRecipient, Suppression
from campaigns.ratelimit import RateLimiter
from campaigns.selectors import audience_queryset
from customers.importer import ERASED_ROW, import_customers_csv
from customers.models import Customer, ErasedAddress, ImportJob, Interaction
from customers.services import customer_erase, customers_import_job, import_job_start
from events.models import OutboxEvent, TransactionalEmail
from events.services import event_emit, outbox_publish
from segments.models import Segment, SegmentMember
from tests.conftest import verified_sender_domain
from tests.tracking.conftest import click_path, open_path
from tests.transactional.conftest import eager_tasks, smtp_sink  # noqa: F401  (fixtures used below)
from tracking.models import Hit
from tracking.rollup import hits_rollup

FAST = RateLimiter(rate_per_second=100000)
SECRET = "hooks:s3cret-webhook-password"
EMAIL = "qwertz.secret@example.com"
FIRST, LAST, PHONE = "Qwertzuiop", "Zyxwvutsr", "+36 1 555 0199"
EXTERNAL_ID = "EXT-QWERTZ-77"
IP, AGENT = "203.0.113.77", "Mozilla/5.0 (X11; Linux x86_64) QwertzBrowser/9.9"
NEEDLES = [EMAIL, FIRST, LAST, PHONE, EXTERNAL_ID, IP, "QwertzBrowser"]
# Column types that can hold text: everything is searched as text.
TEXTUAL = ("text", "character varying", "character", "json", "jsonb", "inet", "ARRAY", "USER-DEFINED")


def _leaks(schemas, needles=NEEDLES):
    """Every (schema.table.column, value) of these schemas whose text holds one of the needles,
    found through information_schema: every table, every column that can hold text."""
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = ANY(%s) AND t.table_type = 'BASE TABLE' AND c.data_type = ANY(%s)",
            [list(schemas), list(TEXTUAL)],
        )
        columns = cursor.fetchall()
        for schema, table, column in columns:
            cursor.execute(
                f'SELECT "{column}"::text FROM "{schema}"."{table}" WHERE '
                + " OR ".join(f'strpos(lower("{column}"::text), %s) > 0' for _ in needles),
                [needle.lower() for needle in needles],
            )
            found += [(f"{schema}.{table}.{column}", value[:300]) for (value,) in cursor.fetchall()]
            if table == "django_session" and column == "session_data":
                cursor.execute(f'SELECT session_data FROM "{schema}"."django_session"')
                for (data,) in cursor.fetchall():
                    decoded = json.dumps(SessionStore().decode(data), default=str).lower()
                    found += [
                        (f"{schema}.django_session (decoded)", n) for n in needles if n.lower() in decoded
                    ]
    return found


def _auth():
    return "Basic " + base64.b64encode(SECRET.encode()).decode()


def _bounce(web, recipient, email=EMAIL):
    payload = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": f"550 5.1.1 <{email}>: Recipient address rejected: User unknown",
        "Details": f"smtp;550 5.1.1 <{email}>... No such user",
        "Email": email.upper(),
        "BouncedAt": "2026-03-02T09:01:00Z",
        "Metadata": {
            "schema": "tenant_a",
            "campaign": str(recipient.campaign_id),
            "recipient": str(recipient.pk),
        },
    }
    response = web.post(
        "/webhooks/anymail/postmark/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=_auth(),
    )
    assert response.status_code == 200


def _csv(*rows):
    header = "email,external_id,first_name,last_name,phone,city,tags,email_marketing,attributes\n"
    return (header + "".join(row + "\n" for row in rows)).encode()


PERSON_ROW = (
    f'{EMAIL},{EXTERNAL_ID},{FIRST},{LAST},{PHONE},Győr,"vip, {FIRST}",yes,"{{""nick"": ""{FIRST}""}}"'
)
OTHER_ROW = "keep@example.com,EXT-KEEP,Keep,Person,+36 1 555 0100,Pest,,yes,"


def _import_as_the_admin_does(admin_user, content):
    job = import_job_start(upload=SimpleUploadedFile("people.csv", content, "text/csv"), user=admin_user)
    customers_import_job(job_id=job.pk)
    return ImportJob.objects.get(pk=job.pk)


def _campaign(name, customers, html=None):
    segment = Segment.objects.create(name=f"{name} audience", kind="static")
    SegmentMember.objects.bulk_create([SegmentMember(segment=segment, customer=c) for c in customers])
    verified_sender_domain("shop.example")
    campaign = editing.campaign_create(
        name=name,
        subject="Hi {{ customer.first_name }}",
        html_body=html or '<p>Dear {{ customer.full_name }}</p><a href="https://shop.example/sale">Sale</a>',
        segment=segment,
        from_email="news@shop.example",
    )
    lifecycle.campaign_send_now(campaign=campaign)
    return campaign


@pytest.fixture
def web(tenant, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    return Client(HTTP_HOST=tenant.get_primary_domain().domain, HTTP_USER_AGENT=AGENT, REMOTE_ADDR=IP)


@pytest.mark.usefixtures("eager_tasks", "rabbitmq_service")
def test_it_leaves_nothing_of_an_erased_person_anywhere_after_a_full_life(
    tenant, api, admin_user, web, django_capture_on_commit_callbacks, request
):
    sink = request.getfixturevalue("smtp_sink")  # a real SMTP server that refuses when told to
    # Imported through the admin's CSV import (with rows whose errors quote the person's data).
    job = _import_as_the_admin_does(
        admin_user,
        _csv(
            PERSON_ROW,
            OTHER_ROW,
            f"taker@example.com,{EXTERNAL_ID},Taker,,,,,,",  # external_id 'EXT-QWERTZ-77' is taken
            f"{EMAIL}@broken,,{FIRST},,,,,,",  # email '...' is not a valid address
        ),
    )
    assert (job.created, job.failed) == (2, 2)
    person = Customer.objects.get(email=EMAIL)
    keep = Customer.objects.get(email="keep@example.com")

    # Mailed through the sender to an SMTP server; a second campaign refused by the server with a
    # reply quoting the address; a third still sending, the person not yet sent to.
    mailed = _campaign("Spring", [person, keep])
    assert sender.campaign_batches_send(campaign_id=mailed.pk, limiter=FAST).sent == 2
    sink.refuse_next = [f"550 5.1.1 <{EMAIL}>: Recipient address rejected: User unknown"]
    refused = _campaign("Refused", [person])
    assert sender.campaign_batches_send(campaign_id=refused.pk, limiter=FAST).failed == 1
    running = _campaign("Running", [keep, person])
    assert EMAIL in CampaignRecipient.objects.get(campaign=refused, customer=person).error
    recipient = CampaignRecipient.objects.get(campaign=mailed, customer=person)
    CampaignRecipient.objects.filter(pk=recipient.pk).update(sent_at=timezone.now() - timedelta(hours=1))
    link = CampaignLink.objects.get(campaign=mailed)

    # Bounced through the ESP's webhook, then opened and clicked (a person's browser, an hour later).
    _bounce(web, recipient)
    assert Suppression.objects.filter(email=EMAIL).exists()
    assert web.get(open_path(recipient)).status_code == 200
    assert web.get(click_path(recipient, link)).status_code == 302
    hits_rollup()
    assert Interaction.objects.filter(customer=person, kind="email_clicked").exists()

    # Edited in the admin (a note naming them), noted through the API, ordered from the webshop (the
    # confirmation refused by the server, quoting the address).
    admin = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    admin.force_login(admin_user)
    edited = admin.post(
        f"/admin/customers/customer/{person.pk}/change/",
        {
            "email": EMAIL,
            "external_id": EXTERNAL_ID,
            "first_name": FIRST,
            "last_name": LAST,
            "phone": PHONE,
            "city": "Győr",
            "country": "HU",
            "email_marketing": "on",
            "email_transactional": "on",
            "attributes": json.dumps({"nick": FIRST}),
            "tags_text": f"vip, {FIRST}",
            "new_note": f"{FIRST} {LAST} called from {PHONE}",
            "addresses-TOTAL_FORMS": "1",
            "addresses-INITIAL_FORMS": "0",
            "addresses-0-kind": "billing",
            "addresses-0-line1": f"{LAST} utca 1",
            "addresses-0-city": "Győr",
            "addresses-0-country": "HU",
            "orders-TOTAL_FORMS": "0",
            "orders-INITIAL_FORMS": "0",
        },
    )
    assert edited.status_code == 302, edited.content.decode()[:2000]
    api.post(
        f"/api/customers/{person.pk}/activity", {"kind": "call", "body": f"{FIRST} asked"}, format="json"
    )
    sink.refuse_next = [f"550 5.1.1 <{EMAIL}>: Recipient address rejected"]
    with django_capture_on_commit_callbacks(execute=True):
        ordered = api.post(
            "/api/orders",
            {
                "external_id": "order-qw-1",
                "customer_email": EMAIL,
                "number": "1001",
                "status": "paid",
                "currency": "EUR",
                "total": "10.00",
                "placed_at": timezone.now().isoformat(),
            },
            format="json",
        )
    assert ordered.status_code == 201
    assert TransactionalEmail.objects.filter(tenant=tenant.schema_name, status="failed").exists()
    event_emit(type="email.opened", data={"campaign_id": mailed.pk, "customer_id": person.pk, "email": EMAIL})
    outbox_publish()  # some of the person's events are out already, the last one is not
    event_emit(
        type="email.clicked", data={"campaign_id": mailed.pk, "customer_id": person.pk, "email": EMAIL}
    )
    assert _leaks(["public", tenant.schema_name])  # the premise: the person is everywhere

    assert api.delete(f"/api/customers/{person.pk}").status_code == 204

    # Afterwards: the pixel and the link again, the webhook again, the same import again.
    assert web.get(open_path(recipient)).status_code == 200
    assert web.get(click_path(recipient, link)).status_code == 302
    _bounce(web, recipient)
    again = _import_as_the_admin_does(admin_user, _csv(PERSON_ROW, OTHER_ROW))
    hits_rollup()
    outbox_publish()

    assert _leaks(["public", tenant.schema_name]) == []
    assert [list(error) for error in again.errors] == [[2, ERASED_ROW]]
    assert Hit.objects.filter(recipient=recipient).count() == 4  # counted, without address or browser
    assert set(Hit.objects.filter(recipient=recipient).values_list("ip", "user_agent")) == {(None, "")}
    assert CampaignRecipient.objects.get(campaign=running, customer=person).status == "cancelled"
    assert CampaignRecipient.objects.get(campaign=running, customer=keep).status == "pending"
    assert Suppression.objects.filter(email__isnull=True).count() == 1
    assert Customer.objects.get(pk=keep.pk).first_name == "Keep"


def test_it_cancels_the_unsent_recipients_of_running_campaigns_and_keeps_the_sent_ones(api, tenant):
    gone = Customer.objects.create(email="gone@example.com", email_marketing=True)
    stay = Customer.objects.create(email="stay@example.com", email_marketing=True)
    campaign = Campaign.objects.create(name="Running", subject="Hi", status="sending")
    sent = Campaign.objects.create(name="Sent", subject="Hi", status="sent")
    pending = CampaignRecipient.objects.create(campaign=campaign, customer=gone, email=gone.email)
    other = CampaignRecipient.objects.create(campaign=campaign, customer=stay, email=stay.email)
    delivered = CampaignRecipient.objects.create(
        campaign=sent, customer=gone, email=gone.email, status="delivered"
    )

    assert api.delete(f"/api/customers/{gone.pk}").status_code == 204

    statuses = dict(CampaignRecipient.objects.values_list("pk", "status"))
    assert (statuses[pending.pk], statuses[other.pk], statuses[delivered.pk]) == (
        "cancelled",
        "pending",
        "delivered",
    )
    assert api.get(f"/api/campaigns/{campaign.pk}/stats").json()["cancelled"] == 1


def test_it_keeps_a_suppression_through_an_erasure_as_a_hash_and_restores_it_for_a_new_sign_up(api, tenant):
    person = Customer.objects.create(email="back@example.com", email_marketing=True)
    Suppression.objects.create(
        email="back@example.com", reason="complaint", detail="spam report by back@example.com"
    )

    assert api.delete(f"/api/customers/{person.pk}").status_code == 204
    kept = Suppression.objects.get(reason="complaint")
    assert (kept.email, kept.detail, len(kept.email_hash)) == (None, "", 64)
    assert ErasedAddress.objects.count() == 1

    created = api.post(
        "/api/customers", {"email": "Back@Example.com", "email_marketing": True}, format="json"
    )

    assert created.status_code == 201
    assert created.json()["id"] != person.pk
    assert list(Suppression.objects.values_list("email", "email_hash", "reason")) == [
        ("back@example.com", None, "complaint")
    ]
    assert ErasedAddress.objects.count() == 0
    segment = Segment.objects.create(name="All", kind="static")
    SegmentMember.objects.create(segment=segment, customer_id=created.json()["id"])
    assert not audience_queryset(campaign=Campaign(segment=segment)).exists()


def test_it_refuses_to_import_an_erased_address_again(api, tenant, tmp_path):
    person = Customer.objects.create(email="gone@example.com")
    assert api.delete(f"/api/customers/{person.pk}").status_code == 204
    path = tmp_path / "c.csv"
    path.write_text("email,first_name\nGone@Example.com,Back\nnew@example.com,New\n", encoding="utf-8")

    report = import_customers_csv(path_or_file=path)

    assert (report.created, report.errors) == (1, [(2, ERASED_ROW)])
    assert not Customer.objects.filter(email="gone@example.com").exists()


def test_it_records_hits_after_an_erasure_without_address_browser_interaction_or_event(tenant, web):
    person = Customer.objects.create(email="late@example.com", email_marketing=True)
    campaign = Campaign.objects.create(name="C", subject="S", status="sent")
    link = CampaignLink.objects.create(campaign=campaign, url="https://shop.example/x")
    recipient = CampaignRecipient.objects.create(
        campaign=campaign,
        customer=person,
        email=person.email,
        status="sent",
        sent_at=timezone.now() - timedelta(hours=2),
    )
    customer_erase(customer=person)
    events_before = OutboxEvent.objects.count()

    assert web.get(open_path(recipient)).status_code == 200
    assert web.get(click_path(recipient, link)).status_code == 302
    result = hits_rollup()

    assert result.hits == 2
    assert list(Hit.objects.filter(recipient=recipient).values_list("ip", "user_agent")) == [
        (None, ""),
        (None, ""),
    ]
    assert not Interaction.objects.filter(
        customer=person, kind__in=["email_opened", "email_clicked"]
    ).exists()
    assert OutboxEvent.objects.count() == events_before
    stats = campaign.tracking_stats
    assert (stats.unique_opens, stats.unique_clicks) == (1, 1)


def test_it_erases_nothing_of_another_customer(api, tenant):
    keep = Customer.objects.create(email="keep@example.com", first_name="Keep")
    gone = Customer.objects.create(email="gone@example.com", first_name="Gone")
    campaign = Campaign.objects.create(name="Spring", subject="Hi", status="sent")
    kept_recipient = CampaignRecipient.objects.create(
        campaign=campaign, customer=keep, email=keep.email, status="sent"
    )
    Hit.objects.create(
        kind="o", recipient=kept_recipient, campaign=campaign, ip="198.51.100.1", user_agent="Keep UA"
    )
    assert api.delete(f"/api/customers/{gone.pk}").status_code == 204
    kept_recipient.refresh_from_db()
    assert kept_recipient.email == "keep@example.com"
    assert Hit.objects.get(recipient=kept_recipient).ip == "198.51.100.1"
    assert Customer.objects.get(pk=keep.pk).first_name == "Keep"


def test_it_requires_an_address_for_a_suppression_added_in_the_admin(tenant, admin_user):
    admin = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    admin.force_login(admin_user)

    response = admin.post(
        "/admin/campaigns/suppression/add/", {"email": " ", "reason": "manual", "detail": ""}
    )

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Suppression.objects.exists()
