"""Only the person (the preference centre) or an admin giving a reason may resubscribe someone who
unsubscribed: an API, bulk, bus or import write that tries is ignored for that field (the rest of it
applies), recorded on the customer and logged."""

import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from customers.importer import import_customers_csv
from customers.models import Customer, Interaction
from customers.services import customer_resubscribe
from tests.events.test_consume_webshop_events import consume, message, webshop  # noqa: F401
from tests.tracking.conftest import preferences_path

from .conftest import events, make_customer

UNSUBSCRIBED_AT = "2026-03-04T05:06:00+00:00"
IGNORED = (
    "A write through {source} asked to turn marketing email back on; ignored, because the customer "
    "unsubscribed on 2026-03-04 05:06 UTC. Only the customer (preference centre) or an admin giving a "
    "reason can resubscribe them."
)


@pytest.fixture
def ann(tenant):
    customer = make_customer(
        email="ann@example.com", first_name="Ann", email_marketing=False, unsubscribed_at=UNSUBSCRIBED_AT
    )
    Interaction.objects.all().delete()
    return customer


def _consent(customer):
    customer.refresh_from_db()
    return (
        customer.email_marketing,
        customer.unsubscribed_at.isoformat() if customer.unsubscribed_at else None,
    )


def _ignored(customer):
    return list(
        Interaction.objects.filter(customer=customer, kind="resubscribe_ignored").values_list("body", "data")
    )


def test_it_ignores_a_resubscribe_through_api_patch_and_applies_the_rest(api, ann, caplog):
    with caplog.at_level(logging.INFO, logger="customers.services"):
        response = api.patch(
            f"/api/customers/{ann.pk}", {"email_marketing": True, "first_name": "Anna"}, format="json"
        )

    assert response.status_code == 200
    assert (response.json()["email_marketing"], response.json()["first_name"]) == (False, "Anna")
    assert _consent(ann) == (False, UNSUBSCRIBED_AT)
    assert _ignored(ann) == [
        (IGNORED.format(source="the API"), {"source": "the API", "fields": ["email_marketing"]})
    ]
    [updated] = [data for kind, data in events("customer.updated") if data["id"] == ann.pk]
    assert updated["changed"] == ["first_name"]
    assert "resubscribe by the API ignored" in caplog.text


@pytest.mark.parametrize(
    "payload",
    [
        {"unsubscribed_at": None},
        {"email_marketing": True, "unsubscribed_at": None},
    ],
)
def test_it_ignores_clearing_the_unsubscribe_through_the_api(api, ann, payload):
    response = api.patch(f"/api/customers/{ann.pk}", payload, format="json")

    assert response.status_code == 200
    assert _consent(ann) == (False, UNSUBSCRIBED_AT)
    assert len(_ignored(ann)) == 1
    assert not [data for kind, data in events("customer.updated") if data["id"] == ann.pk]


def test_it_ignores_a_resubscribe_through_api_put(api, ann):
    body = api.get(f"/api/customers/{ann.pk}").json()
    body.update(email_marketing=True, unsubscribed_at=None, city="Pécs")

    response = api.put(f"/api/customers/{ann.pk}", body, format="json")

    assert response.status_code == 200
    assert response.json()["city"] == "Pécs"
    assert _consent(ann) == (False, UNSUBSCRIBED_AT)
    assert _ignored(ann)[0][1] == {"source": "the API", "fields": ["email_marketing", "unsubscribed_at"]}


def test_it_ignores_a_resubscribe_through_the_bulk_api(api, ann):
    response = api.post(
        "/api/customers/bulk",
        [
            {"email": "ann@example.com", "email_marketing": True},
            {"email": "new@example.com", "email_marketing": True},
        ],
        format="json",
    )

    assert response.status_code == 200
    assert [item["status"] for item in response.json()["results"]] == ["unchanged", "created"]
    assert _consent(ann) == (False, UNSUBSCRIBED_AT)
    assert _ignored(ann) == [
        (IGNORED.format(source="the bulk API"), {"source": "the bulk API", "fields": ["email_marketing"]})
    ]
    assert Customer.objects.get(email="new@example.com").email_marketing is True  # a first opt-in


def test_it_ignores_a_resubscribe_through_the_webshop_bus(ann, webshop):  # noqa: F811
    webshop.publish(
        message("customer.upserted", {"email": "ann@example.com", "email_marketing": True, "city": "Eger"})
    )

    consume()

    ann.refresh_from_db()
    assert ann.city == "Eger"
    assert _consent(ann) == (False, UNSUBSCRIBED_AT)
    assert _ignored(ann) == [
        (
            IGNORED.format(source="the webshop bus"),
            {"source": "the webshop bus", "fields": ["email_marketing"]},
        )
    ]


def test_it_ignores_a_resubscribe_through_a_csv_import(tmp_path, ann):
    never = make_customer(email="never@example.com", email_marketing=False)
    path = tmp_path / "c.csv"
    path.write_text(
        "email,email_marketing,city\nann@example.com,yes,Szeged\nnever@example.com,yes,Pécs\n",
        encoding="utf-8",
    )

    report = import_customers_csv(path_or_file=path)

    assert (report.updated, report.failed, report.resubscribes_ignored) == (2, 0, 1)
    ann.refresh_from_db()
    assert ann.city == "Szeged"
    assert _consent(ann) == (False, UNSUBSCRIBED_AT)
    assert _ignored(ann) == [
        (IGNORED.format(source="a CSV import"), {"source": "a CSV import", "fields": ["email_marketing"]})
    ]
    assert _consent(never) == (True, None)  # never unsubscribed: a first opt-in applies
    assert _ignored(never) == []


def test_it_lets_a_customer_who_never_unsubscribed_opt_in_through_the_api(api, tenant):
    customer = make_customer(email="bo@example.com", email_marketing=False)

    response = api.patch(f"/api/customers/{customer.pk}", {"email_marketing": True}, format="json")

    assert response.json()["email_marketing"] is True
    assert _ignored(customer) == []


def test_it_lets_the_person_resubscribe_through_the_preference_centre(tenant, ann):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)

    response = client.post(preferences_path(ann), {"email_marketing": "on", "email_transactional": "on"})

    assert response.status_code == 200
    assert _consent(ann) == (True, None)
    [record] = Interaction.objects.filter(customer=ann, kind="resubscribed")
    assert record.body == (
        "Resubscribed to marketing email by the customer (preferences): The customer turned marketing email on "
        "again."
    )
    assert (record.data["source"], record.data["by"], record.data["unsubscribed_at"]) == (
        "preferences",
        "the customer",
        UNSUBSCRIBED_AT,
    )
    [updated] = [data for kind, data in events("customer.updated") if data["id"] == ann.pk]
    assert sorted(updated["changed"]) == ["email_marketing", "unsubscribed_at"]


@pytest.fixture
def admin_browser(tenant, admin_user):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(admin_user)
    return client


def _resubscribe_action(browser, customers, **extra):
    return browser.post(
        "/admin/customers/customer/",
        {"action": "resubscribe", "_selected_action": [c.pk for c in customers], **extra},
    )


def test_it_lets_an_admin_resubscribe_with_a_reason_recorded(admin_browser, admin_user, ann):
    asked = _resubscribe_action(admin_browser, [ann])
    before = timezone.now()
    done = _resubscribe_action(admin_browser, [ann], apply="1", reason="Signed consent form, 2026-05-01")

    assert asked.status_code == 200
    assert b'id="resubscribe-reason"' in asked.content
    assert _consent(ann) == (True, None)
    [record] = Interaction.objects.filter(customer=ann, kind="resubscribed")
    assert record.author == admin_user
    assert record.occurred_at >= before
    assert record.data == {
        "source": "admin",
        "by": admin_user.get_username(),
        "reason": "Signed consent form, 2026-05-01",
        "unsubscribed_at": UNSUBSCRIBED_AT,
    }
    assert done.status_code == 302


def test_it_refuses_an_admin_resubscribe_without_a_reason_and_changes_nothing(admin_browser, ann):
    response = _resubscribe_action(admin_browser, [ann], apply="1", reason="  ")

    assert response.status_code == 200
    assert b"Say why they may get marketing email again" in response.content
    assert _consent(ann) == (False, UNSUBSCRIBED_AT)
    assert not Interaction.objects.filter(customer=ann).exists()


def test_it_refuses_a_resubscribe_by_editing_the_admin_form(admin_browser, ann):
    response = admin_browser.post(
        f"/admin/customers/customer/{ann.pk}/change/",
        {
            "email": "ann@example.com",
            "first_name": "Ann",
            "email_marketing": "on",
            "email_transactional": "on",
            "unsubscribed_at_0": "",
            "unsubscribed_at_1": "",
            "attributes": "{}",
            "tags_text": "",
            "addresses-TOTAL_FORMS": "0",
            "addresses-INITIAL_FORMS": "0",
            "orders-TOTAL_FORMS": "0",
            "orders-INITIAL_FORMS": "0",
        },
    )

    # Consent is not a field of the form (its own actions record who and why): the box is ignored.
    assert response.status_code == 302
    assert _consent(ann) == (False, UNSUBSCRIBED_AT)


def test_it_needs_a_user_and_a_reason_for_an_admin_resubscribe(ann):
    user = get_user_model().objects.create_user(username="m@example.com", password="x-password-1")
    with pytest.raises(ValidationError):
        customer_resubscribe(customer=ann, source="admin", reason="", author=user)
    with pytest.raises(ValidationError):
        customer_resubscribe(customer=ann, source="admin", reason="because")
    assert _consent(ann) == (False, UNSUBSCRIBED_AT)
