"""The open pixel and the click redirect answer before the rest of the middleware
(tracking/middleware.py): the same answers, headers and guarantees, in fewer statements."""

from django.db import connection
from django_tenants.utils import schema_context

from campaigns.tokens import make_token
from tenancy.services import tenant_activate, tenant_deactivate
from tracking.models import Hit
from tracking.views import PIXEL_GIF

from .conftest import click_path, is_pixel, make_sent_campaign, open_path


def _statements(django_assert_max_num_queries, call):
    with django_assert_max_num_queries(10) as captured:
        response = call()
    # Less the tenant's work marker (tenancy.work.work_mark_soon: at most once a second per process
    # once committed; inside a test's transaction nothing commits, so it is written on every hit).
    return response, [
        query["sql"] for query in captured.captured_queries if "tenancy_work" not in query["sql"]
    ]


def test_it_records_an_open_in_two_statements_with_the_stacks_headers(
    web, sent, django_assert_max_num_queries
):
    response, statements = _statements(
        django_assert_max_num_queries, lambda: web.get(open_path(sent.recipients[0]))
    )

    assert is_pixel(response)
    # The host's tenant (which also sets the search_path), then the hit: no SET search_path of its own.
    assert len(statements) == 2, statements
    assert "set_config('search_path'" in statements[0] and "INSERT INTO tracking_hits" in statements[1]
    assert response["Content-Length"] == str(len(PIXEL_GIF))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in response and "Vary" not in response
    assert Hit.objects.filter(recipient=sent.recipients[0], kind="o").count() == 1


def test_it_redirects_a_click_in_two_statements_with_the_pages_headers(
    web, sent, django_assert_max_num_queries
):
    recipient, link = sent.recipients[0], sent.links[1]

    response, statements = _statements(
        django_assert_max_num_queries, lambda: web.get(click_path(recipient, link))
    )

    assert (response.status_code, response["Location"]) == (302, link.url)
    assert len(statements) == 2, statements
    assert (
        response["Cache-Control"].startswith("no-store") and response["X-Robots-Tag"] == "noindex, nofollow"
    )
    assert response["Content-Security-Policy"].startswith("default-src 'none'")
    assert response["X-Frame-Options"] == "DENY" and response["Content-Length"] == "0"
    assert Hit.objects.filter(recipient=recipient, link=link, kind="c").count() == 1


def test_it_sends_a_click_that_gets_a_page_down_the_whole_stack(web, sent):
    token = click_path(sent.recipients[0], sent.links[0])
    response = web.get(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert response.status_code == 404 and b"<html" in response.content.lower()
    assert Hit.objects.count() == 0


def test_it_sees_a_deactivation_on_the_next_request(tenant, web, sent):
    recipient, link = sent.recipients[0], sent.links[0]
    assert is_pixel(web.get(open_path(recipient)))
    assert web.get(click_path(recipient, link)).status_code == 302
    assert Hit.objects.count() == 2

    connection.set_schema_to_public()
    tenant_deactivate(tenant=tenant)
    try:
        assert is_pixel(web.get(open_path(recipient)))
        gone = web.get(click_path(recipient, link))
        assert (gone.status_code, gone.content) == (410, b"This account is not active.")
    finally:
        connection.set_schema_to_public()
        tenant_activate(tenant=tenant)
        connection.set_tenant(tenant)
    assert Hit.objects.count() == 2


def test_it_records_each_hosts_hits_in_its_own_schema(web, web_b, sent, other_tenant):
    with schema_context(other_tenant.schema_name):
        sent_b = make_sent_campaign(name="B's")
        b_pixel = f"/t/o/{make_token('o', sent_b.recipients[0].pk, schema=other_tenant.schema_name)}"
    a_pixel = open_path(sent.recipients[0])

    for _ in range(2):
        assert is_pixel(web.get(a_pixel))
        assert is_pixel(web_b.get(b_pixel))
        assert is_pixel(web_b.get(a_pixel))  # A's token on B's host: the image, nothing recorded

    assert list(Hit.objects.values_list("recipient_id", flat=True)) == [sent.recipients[0].pk] * 2
    with schema_context(other_tenant.schema_name):
        assert list(Hit.objects.values_list("recipient_id", flat=True)) == [sent_b.recipients[0].pk] * 2
