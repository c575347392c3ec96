from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import Campaign, CampaignRecipient
from customers.models import Address, Customer, CustomerTag, Interaction, Order
from events.models import OutboxEvent
from events.services import event_emit

from .conftest import events, make_order


def test_it_erases_personal_data_and_keeps_history(api, admin_user, customer_factory):
    customer = customer_factory(
        email="ann@example.com",
        external_id="ws-1",
        first_name="Ann",
        last_name="Smith",
        phone="123",
        city="Győr",
        country="HU",
        tags=["vip"],
        attributes={"birthday": "1990-01-01"},
        email_marketing=True,
        addresses=[{"kind": "billing", "line1": "Fő utca 1"}],
    )
    order = make_order(
        external_id="o-1", customer=customer.pk, total="99.00", items=[{"sku": "A", "unit_price": "99"}]
    )
    api.post(
        f"/api/customers/{customer.pk}/activity",
        {"kind": "note", "body": "Called about her divorce"},
        format="json",
    )

    response = api.delete(f"/api/customers/{customer.pk}")

    assert response.status_code == 204
    body = api.get(f"/api/customers/{customer.pk}").json()
    assert {
        k: body[k] for k in ("email", "external_id", "first_name", "last_name", "phone", "city", "country")
    } == {
        "email": None,
        "external_id": None,
        "first_name": "",
        "last_name": "",
        "phone": "",
        "city": "",
        "country": "",
    }
    assert (body["tags"], body["attributes"], body["addresses"]) == ([], {}, [])
    assert (body["email_marketing"], body["email_transactional"]) == (False, False)
    assert (body["total_spent"], body["order_count"]) == ("99.00", 1)
    assert Customer.objects.get(pk=customer.pk).erased_at is not None
    assert not Address.objects.filter(customer=customer).exists()
    assert not CustomerTag.objects.filter(customer=customer).exists()
    assert Order.objects.get(pk=order.pk).items.count() == 1
    kinds = list(Interaction.objects.filter(customer=customer).order_by("id").values_list("kind", "body"))
    assert kinds == [("order_placed", ""), ("note", ""), ("erased", "Personal data erased.")]
    assert Interaction.objects.get(customer=customer, kind="order_placed").data["external_id"] == "o-1"


def test_it_drops_unpublished_events_about_the_customer_and_scrubs_published_ones(api, customer_factory):
    customer = customer_factory(email="ann@example.com", first_name="Ann")  # customer.created, unpublished
    other = customer_factory(email="bob@example.com")
    published = event_emit(
        type="email.opened", data={"campaign_id": 1, "customer_id": customer.pk, "email": "ann@example.com"}
    )
    OutboxEvent.objects.filter(pk=published.pk).update(published_at=timezone.now())
    unpublished = event_emit(
        type="email.clicked", data={"campaign_id": 1, "customer_id": customer.pk, "email": "ann@example.com"}
    )
    has_recipients = False
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('campaign_recipients') IS NOT NULL")
        has_recipients = cursor.fetchone()[0]
    if has_recipients:
        campaign = Campaign.objects.create(name="C", subject="S")
        CampaignRecipient.objects.create(campaign=campaign, customer=customer, email="ann@example.com")

    assert api.delete(f"/api/customers/{customer.pk}").status_code == 204

    dumped = str(
        list(OutboxEvent.objects.filter(tenant=connection.schema_name).values_list("data", flat=True))
    )
    assert "ann@example.com" not in dumped and "Ann" not in dumped
    assert "bob@example.com" in dumped  # other customers' events are untouched
    assert [data for type_, data in events("customer.created") if data.get("id") == customer.pk] == []
    assert not OutboxEvent.objects.filter(pk=unpublished.pk).exists()
    assert OutboxEvent.objects.get(pk=published.pk).data == {"campaign_id": 1, "customer_id": customer.pk}
    [erasure] = [data for type_, data in events("customer.updated") if data.get("id") == customer.pk]
    assert (erasure["email"], erasure["first_name"]) == (None, "")
    assert other.pk != customer.pk
    if has_recipients:
        assert CampaignRecipient.objects.get(customer=customer).email.endswith("@erased.invalid")


def test_it_erases_idempotently(api, customer_factory):
    customer = customer_factory(email="ann@example.com")
    assert api.delete(f"/api/customers/{customer.pk}").status_code == 204
    count = OutboxEvent.objects.count()
    assert api.delete(f"/api/customers/{customer.pk}").status_code == 204
    assert OutboxEvent.objects.count() == count


def test_it_frees_the_email_of_an_erased_customer(api, customer_factory):
    customer = customer_factory(email="ann@example.com")
    api.delete(f"/api/customers/{customer.pk}")
    response = api.post("/api/customers", {"email": "ann@example.com"}, format="json")
    assert response.status_code == 201
    assert response.json()["id"] != customer.pk


def test_it_adds_notes_with_their_author_and_lists_activity_newest_first(api, customer_factory):
    customer = customer_factory(email="ann@example.com")
    first = api.post(
        f"/api/customers/{customer.pk}/activity",
        {"kind": "call", "body": "Asked about delivery", "occurred_at": "2025-01-01T09:00:00Z"},
        format="json",
    )
    second = api.post(
        f"/api/customers/{customer.pk}/activity", {"kind": "note", "body": "VIP"}, format="json"
    )
    assert first.status_code == 201 and second.status_code == 201
    assert first.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "kind": "call",
        "body": "Asked about delivery",
        "data": {},
        "occurred_at": "2025-01-01T09:00:00Z",
        "author": "admin@tenant-a.localhost",
        "created_at": "",
    }
    body = api.get(f"/api/customers/{customer.pk}/activity").json()
    assert [row["body"] for row in body["results"]] == ["VIP", "Asked about delivery"]


def test_it_refuses_bad_activity_and_writes_nothing(api, customer_factory):
    customer = customer_factory(email="ann@example.com")
    before = Interaction.objects.count()
    url = f"/api/customers/{customer.pk}/activity"
    assert api.post(url, {"kind": "order_placed", "body": "x"}, format="json").json() == {
        "kind": ['"order_placed" is not a valid choice.']
    }
    assert api.post(url, {"kind": "note"}, format="json").json() == {"body": ["This field is required."]}
    assert api.post(url, {"kind": "note", "body": "x", "author": 1}, format="json").json() == {
        "author": ["Unknown field."]
    }
    assert (
        api.post("/api/customers/999999/activity", {"kind": "note", "body": "x"}, format="json").status_code
        == 404
    )
    assert Interaction.objects.count() == before


def test_it_shows_tenant_b_nothing_of_tenant_a(api, api_b, tenant, customer_factory, other_tenant):
    customer = customer_factory(email="ann@example.com", tags=["vip"])
    order = make_order(external_id="o-1", customer=customer.pk, total="5")
    api.post(f"/api/customers/{customer.pk}/activity", {"kind": "note", "body": "secret"}, format="json")

    assert api_b.get("/api/customers").json()["count"] == 0
    assert api_b.get("/api/customers?search=ann").json()["count"] == 0
    assert b"ann@example.com" not in b"".join(api_b.get("/api/customers?format=csv").streaming_content)
    assert api_b.get(f"/api/customers/{customer.pk}").status_code == 404
    assert api_b.get(f"/api/customers/{customer.pk}/orders").status_code == 404
    assert api_b.get(f"/api/customers/{customer.pk}/activity").status_code == 404
    assert (
        api_b.post(
            f"/api/customers/{customer.pk}/activity", {"kind": "note", "body": "x"}, format="json"
        ).status_code
        == 404
    )
    assert api_b.patch(f"/api/customers/{customer.pk}", {"first_name": "X"}, format="json").status_code == 404
    assert api_b.delete(f"/api/customers/{customer.pk}").status_code == 404
    assert api_b.get(f"/api/orders/{order.pk}").status_code == 404
    assert api_b.patch(f"/api/orders/{order.pk}", {"status": "paid"}, format="json").status_code == 404
    response = api_b.post(
        "/api/orders", {"external_id": "o-b", "customer": customer.pk, "total": "1"}, format="json"
    )
    assert response.status_code == 400
    with schema_context(other_tenant.schema_name):
        assert Customer.objects.count() == 0 and Order.objects.count() == 0
    connection.set_tenant(tenant)  # requests to B's host left the connection on B
    assert Customer.objects.get(pk=customer.pk).first_name == ""
    assert Customer.objects.get(pk=customer.pk).email == "ann@example.com"
    assert Order.objects.get(pk=order.pk).status == "pending"
