"""/api/templates: create, edit, validate (syntax errors are a 400 naming the line), preview."""

from django_tenants.utils import schema_context

from campaigns.models import EmailTemplate
from customers.models import Customer

VALID = {
    "name": "Welcome",
    "subject": "Hi {{ customer.first_name|default:'there' }}",
    "html_body": "<p>Hello {{ customer.full_name }}</p><a href='{{ unsubscribe_url }}'>unsubscribe</a>",
    "text_body": "",
    "kind": "marketing",
}


def test_it_creates_lists_and_edits_a_template(api, tenant):
    response = api.post("/api/templates", VALID, format="json")
    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in VALID} == VALID
    assert body["key"] is None
    listed = api.get("/api/templates?kind=marketing").json()
    assert [t["id"] for t in listed["results"] if t["name"] == "Welcome"] == [body["id"]]

    response = api.patch(f"/api/templates/{body['id']}", {"subject": "New"}, format="json")
    assert response.status_code == 200
    assert EmailTemplate.objects.get(pk=body["id"]).subject == "New"
    assert EmailTemplate.objects.get(pk=body["id"]).html_body == VALID["html_body"]


def test_it_refuses_a_syntax_error_naming_the_field_and_line(api, tenant):
    before = EmailTemplate.objects.count()
    response = api.post(
        "/api/templates",
        {**VALID, "html_body": "<p>ok</p>\n<p>{% if customer.first_name %}</p>\n"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "html_body": ["Line 2: Unclosed tag on line 2: 'if'. Looking for one of: elif, else, endif."]
    }
    assert EmailTemplate.objects.count() == before


def test_it_refuses_tags_that_reach_outside_the_sandbox(api, tenant):
    before = EmailTemplate.objects.count()
    for source in (
        "{% load static %}",
        '{% include "admin/base.html" %}',
        "{% debug %}",
        "{{ x.__class__ }}",
    ):
        response = api.post("/api/templates", {**VALID, "subject": source}, format="json")
        assert response.status_code == 400, source
        assert list(response.json()) == ["subject"]
        assert response.json()["subject"][0].startswith("Line 1: ")
    assert EmailTemplate.objects.count() == before


def test_it_refuses_an_edit_that_breaks_the_template_and_keeps_the_old_one(api, tenant):
    template = EmailTemplate.objects.create(name="T", subject="S", html_body="<p>x</p>")
    response = api.patch(f"/api/templates/{template.pk}", {"html_body": "{% for x in y %}"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "html_body": ["Line 1: Unclosed tag on line 1: 'for'. Looking for one of: empty, endfor."]
    }
    template.refresh_from_db()
    assert template.html_body == "<p>x</p>"


def test_it_requires_a_key_for_transactional_templates_and_one_per_key(api, tenant):
    before = EmailTemplate.objects.count()
    response = api.post("/api/templates", {**VALID, "kind": "transactional"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["key"]
    response = api.post(
        "/api/templates", {**VALID, "kind": "marketing", "key": "order_shipped"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"key": ["Only transactional templates have a key."]}
    response = api.post("/api/templates", {**VALID, "kind": "transactional", "key": "nope"}, format="json")
    assert response.status_code == 400
    assert EmailTemplate.objects.count() == before
    existing = EmailTemplate.objects.filter(kind="transactional", key="order_shipped").exists()
    if not existing:
        assert (
            api.post(
                "/api/templates", {**VALID, "kind": "transactional", "key": "order_shipped"}, format="json"
            ).status_code
            == 201
        )
    count = EmailTemplate.objects.count()
    response = api.post(
        "/api/templates", {**VALID, "kind": "transactional", "key": "order_shipped"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"key": ["There is already a transactional template for 'order_shipped'."]}
    assert EmailTemplate.objects.count() == count


def test_it_previews_a_template_against_a_customer(api, tenant):
    customer = Customer.objects.create(email="ann@example.com", first_name="Ann", last_name="Lee")
    template = EmailTemplate.objects.create(
        name="T", subject="Hi {{ customer.first_name }}", html_body=VALID["html_body"]
    )
    response = api.post(f"/api/templates/{template.pk}/preview", {"customer": customer.pk}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["subject"] == "Hi Ann"
    assert "<p>Hello Ann Lee</p>" in body["html"]
    assert "Hello Ann Lee" in body["text"]
    sample = api.post(f"/api/templates/{template.pk}/preview", {}, format="json").json()
    assert sample["subject"] == "Hi Alex"


def test_it_answers_404_for_another_tenants_template_and_400_for_an_unknown_customer(
    api, api_b, tenant, other_tenant
):
    template = EmailTemplate.objects.create(name="T", subject="S", html_body="x")
    assert api.post(f"/api/templates/{template.pk}/preview", {"customer": 999999}, format="json").json() == {
        "customer": ["No such customer."]
    }
    with schema_context(other_tenant.schema_name):
        EmailTemplate.objects.filter(pk=template.pk).delete()  # rolled back with the test
    assert api_b.get(f"/api/templates/{template.pk}").status_code == 404
    assert api_b.post(f"/api/templates/{template.pk}/preview", {}, format="json").status_code == 404
