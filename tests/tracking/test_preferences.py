import re

import pytest
from django.test import Client

from customers.models import Customer, Interaction
from customers.services import customer_erase
from events.models import OutboxEvent

from .conftest import preferences_path


@pytest.fixture
def customer(sent):
    return Customer.objects.get(pk=sent.recipients[0].customer_id)


def _csrf_client(tenant):
    return Client(HTTP_HOST=tenant.get_primary_domain().domain, enforce_csrf_checks=True)


def _form(client, customer):
    response = client.get(preferences_path(customer))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode()).group(1)
    return response, token


def test_it_shows_the_current_choices_in_the_tenants_name(tenant, customer):
    client = _csrf_client(tenant)
    response, _ = _form(client, customer)
    html = response.content.decode()
    assert response.status_code == 200
    assert tenant.name in html
    assert re.search(r'name="email_marketing"[^>]*checked', html)
    assert re.search(r'name="email_transactional"[^>]*checked', html)
    assert "<script" not in html


def test_it_saves_the_choices_with_a_csrf_token(tenant, customer):
    client = _csrf_client(tenant)
    _, token = _form(client, customer)
    response = client.post(
        preferences_path(customer), {"csrfmiddlewaretoken": token, "email_transactional": "on"}
    )
    assert response.status_code == 200
    assert b"Your preferences are saved." in response.content
    customer.refresh_from_db()
    assert (customer.email_marketing, customer.email_transactional) == (False, True)
    assert customer.unsubscribed_at is not None
    assert OutboxEvent.objects.filter(type="customer.unsubscribed").count() == 1
    assert Interaction.objects.filter(kind="unsubscribed").get().data == {"source": "preferences"}

    response = client.post(
        preferences_path(customer), {"csrfmiddlewaretoken": token, "email_marketing": "on"}
    )
    customer.refresh_from_db()
    assert (customer.email_marketing, customer.email_transactional, customer.unsubscribed_at) == (
        True,
        False,
        None,
    )
    event = OutboxEvent.objects.get(type="customer.updated")
    assert sorted(event.data["changed"]) == ["email_marketing", "email_transactional", "unsubscribed_at"]
    assert Interaction.objects.filter(kind="preferences").count() == 1


def test_it_refuses_a_post_without_csrf_token_and_changes_nothing(tenant, customer):
    client = _csrf_client(tenant)
    response = client.post(preferences_path(customer), {"email_transactional": ""})
    assert response.status_code == 403
    customer.refresh_from_db()
    assert (customer.email_marketing, customer.email_transactional, customer.unsubscribed_at) == (
        True,
        True,
        None,
    )
    assert not OutboxEvent.objects.filter(type__startswith="customer.").exists()


def test_it_changes_nothing_when_nothing_changed(tenant, customer):
    client = _csrf_client(tenant)
    _, token = _form(client, customer)
    data = {"csrfmiddlewaretoken": token, "email_marketing": "on", "email_transactional": "on"}
    assert client.post(preferences_path(customer), data).status_code == 200
    assert not OutboxEvent.objects.exists()
    assert not Interaction.objects.exists()


def test_it_answers_404_for_invalid_foreign_or_erased_tokens(tenant, customer, web_b):
    client = _csrf_client(tenant)
    assert client.get("/p/forged-token").status_code == 404
    assert web_b.get(preferences_path(customer)).status_code == 404

    customer_erase(customer=customer)
    assert client.get(preferences_path(customer)).status_code == 404
