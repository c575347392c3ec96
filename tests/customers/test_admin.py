import pytest
from django.contrib.admin import helpers
from django.core.files.uploadedfile import SimpleUploadedFile

from customers.models import Customer, ImportJob, Interaction, Order
from customers.tasks import import_customers_job
from events.models import OutboxEvent

from .conftest import events, make_customer, make_order

HOST = {"HTTP_HOST": "tenant-a.localhost"}


@pytest.fixture
def admin_client(client, marketer):
    client.force_login(marketer)
    return client


@pytest.fixture
def people(tenant):
    ann = make_customer(
        email="ann@example.com",
        first_name="Ann",
        city="Győr",
        country="HU",
        tags=["vip"],
        email_marketing=True,
    )
    bob = make_customer(
        email="bob@example.com", first_name="Bob <script>alert(1)</script>", city="Wien", country="AT"
    )
    make_order(external_id="o-1", customer=ann.pk, total="1200", number="N-1")
    return ann, bob


def changelist(admin_client, **params):
    response = admin_client.get("/admin/customers/customer/", params, **HOST)
    assert response.status_code == 200
    return [c.pk for c in response.context["cl"].result_list]


def test_it_searches_and_filters_the_changelist(admin_client, people):
    ann, bob = people
    assert changelist(admin_client) == [bob.pk, ann.pk]
    assert changelist(admin_client, q="ann") == [ann.pk]
    assert changelist(admin_client, tag=str(ann.tags.get().pk)) == [ann.pk]
    assert changelist(admin_client, city="győr") == [ann.pk]
    assert changelist(admin_client, country="at") == [bob.pk]
    assert changelist(admin_client, consent="yes") == [ann.pk]
    assert changelist(admin_client, total_spent_from="1000") == [ann.pk]
    assert changelist(admin_client, total_spent_to="10") == [bob.pk]


def test_it_shows_addresses_orders_and_activity_escaped_on_the_form(admin_client, people):
    ann, bob = people
    Interaction.objects.create(customer=bob, kind="note", body="<b>loud</b>")
    response = admin_client.get(f"/admin/customers/customer/{bob.pk}/change/", **HOST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;b&gt;loud&lt;/b&gt;" in html
    html = admin_client.get(f"/admin/customers/customer/{ann.pk}/change/", **HOST).content.decode()
    assert "N-1" in html and "Order placed" in html


def _form_data(customer, **changes):
    data = {
        "email": customer.email,
        "external_id": customer.external_id or "",
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "phone": customer.phone,
        "city": customer.city,
        "country": customer.country,
        "email_marketing": "on" if customer.email_marketing else "",
        "email_transactional": "on",
        "attributes": "{}",
        "tags_text": ", ".join(customer.tags.values_list("name", flat=True)),
        "new_note": "",
        "addresses-TOTAL_FORMS": "0",
        "addresses-INITIAL_FORMS": "0",
        "orders-TOTAL_FORMS": "0",
        "orders-INITIAL_FORMS": str(customer.orders.count()),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""} | {k: v for k, v in changes.items()}


def test_it_saves_the_form_through_the_services(admin_client, people, marketer):
    ann, _ = people
    OutboxEvent.objects.all().delete()
    data = _form_data(ann, first_name="Anna", tags_text="vip, gold", new_note="Prefers phone calls")
    data.update(
        {
            "addresses-TOTAL_FORMS": "1",
            "addresses-0-kind": "billing",
            "addresses-0-line1": "Fő utca 1",
            "addresses-0-country": "HU",
        }
    )
    orders = list(ann.orders.all())
    for i, order in enumerate(orders):
        data[f"orders-{i}-id"] = str(order.pk)
        data[f"orders-{i}-customer"] = str(ann.pk)
    response = admin_client.post(f"/admin/customers/customer/{ann.pk}/change/", data, **HOST)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else response
    )
    ann.refresh_from_db()
    assert ann.first_name == "Anna"
    assert sorted(ann.tags.values_list("name", flat=True)) == ["gold", "vip"]
    assert list(ann.addresses.values_list("line1", flat=True)) == ["Fő utca 1"]
    note = Interaction.objects.get(customer=ann, kind="note")
    assert (note.body, note.author) == ("Prefers phone calls", marketer)
    assert [data["changed"] for _, data in events("customer.updated")] == [
        ["first_name", "tags"],
        ["addresses"],
    ]


def test_it_refuses_a_duplicate_email_in_the_form_and_changes_nothing(admin_client, people):
    ann, bob = people
    before = list(Customer.objects.order_by("id").values())
    response = admin_client.post(
        f"/admin/customers/customer/{bob.pk}/change/", _form_data(bob, email="ANN@example.com"), **HOST
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["email"] == [
        "A customer with this email already exists."
    ]
    assert list(Customer.objects.order_by("id").values()) == before


def _action(admin_client, action, ids, **extra):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [str(i) for i in ids], **extra}
    return admin_client.post("/admin/customers/customer/", data, **HOST)


def test_it_asks_for_the_tag_then_applies_it_to_the_selection(admin_client, people):
    ann, bob = people
    response = _action(admin_client, "add_tag", [ann.pk, bob.pk])
    assert response.status_code == 200
    assert b'id="tag-action-form"' in response.content
    assert not bob.tags.exists()
    response = _action(admin_client, "add_tag", [ann.pk, bob.pk], apply="1", tag_name="Gold")
    assert response.status_code == 302
    assert list(bob.tags.values_list("name", flat=True)) == ["Gold"]
    _action(admin_client, "remove_tag", [ann.pk], apply="1", tag_name="vip")
    assert list(ann.tags.values_list("name", flat=True)) == ["Gold"]
    assert [d["changed"] for _, d in events("customer.updated")][-3:] == [["tags"], ["tags"], ["tags"]]


def test_it_exports_the_selection_as_csv(admin_client, people):
    ann, _ = people
    response = _action(admin_client, "export_csv", [ann.pk])
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 2 and "ann@example.com" in lines[1]


def test_it_imports_an_uploaded_csv_on_a_worker_with_progress(
    admin_client, tenant, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("list.csv", b"email,first_name\nzed@example.com,Zed\nbad,Bad\n", "text/csv")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post("/admin/customers/importjob/add/", {"file": upload}, **HOST)
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert (job.status, job.filename, len(callbacks)) == ("queued", "list.csv", 1)
    import_customers_job.apply(args=[job.pk])
    job.refresh_from_db()
    assert (job.status, job.rows, job.created, job.failed, job.percent) == ("done", 2, 1, 1, 100)
    assert job.errors == [[3, "email 'bad' is not a valid address"]]
    page = admin_client.get(f"/admin/customers/importjob/{job.pk}/change/", **HOST).content.decode()
    assert "line 3: email &#x27;bad&#x27; is not a valid address" in page
    # A redelivered task does not import twice.
    import_customers_job.apply(args=[job.pk])
    assert Customer.objects.filter(email="zed@example.com").count() == 1
    job.refresh_from_db()
    assert not job.file  # the uploaded list (personal data) is not kept


def test_it_refuses_an_upload_that_is_not_csv(admin_client, tenant):
    upload = SimpleUploadedFile("list.xlsx", b"PK...", "application/octet-stream")
    response = admin_client.post("/admin/customers/importjob/add/", {"file": upload}, **HOST)
    assert response.status_code == 200
    assert ImportJob.objects.count() == 0


def test_it_changes_an_order_status_in_the_admin_through_the_service(admin_client, people):
    order = Order.objects.get(external_id="o-1")
    response = admin_client.post(
        f"/admin/customers/order/{order.pk}/change/",
        {
            "status": "cancelled",
            "items-TOTAL_FORMS": "0",
            "items-INITIAL_FORMS": "0",
        },
        **HOST,
    )
    assert response.status_code == 302
    customer = Customer.objects.get(pk=order.customer_id)
    assert (customer.order_count, str(customer.total_spent)) == (0, "0.00")
    assert Interaction.objects.filter(customer=customer, kind="order_status").count() == 1
