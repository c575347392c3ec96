from django_tenants.utils import schema_context

from campaigns.tokens import make_token
from tracking.models import Hit

from .conftest import click_path, make_sent_campaign


def test_it_redirects_to_the_link_of_the_campaign(web, sent):
    recipient, link = sent.recipients[1], sent.links[1]
    response = web.get(click_path(recipient, link), REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 302
    assert response["Location"] == "https://shop.example.com/new?utm=x&a=1"
    assert "no-store" in response["Cache-Control"]
    hits = list(Hit.objects.values_list("kind", "campaign_id", "recipient_id", "link_id", "is_machine", "ip"))
    assert hits == [("c", sent.campaign.pk, recipient.pk, link.pk, False, "198.51.100.7")]


def test_it_refuses_a_link_of_another_campaign_with_a_plain_404(web, sent):
    other = make_sent_campaign(name="Other", emails=("dan@example.com",), urls=("https://evil.example.net/",))
    response = web.get(f"/t/c/{make_token('c', sent.recipients[0].pk, other.links[0].pk)}")
    assert response.status_code == 404
    assert "Location" not in response
    assert b"This link is not valid" in response.content
    assert b"evil.example.net" not in response.content
    assert Hit.objects.count() == 0


def test_it_refuses_tampered_and_foreign_tokens_without_redirecting(web, sent):
    good = click_path(sent.recipients[0], sent.links[0])
    tampered = good[:-2] + ("zz" if not good.endswith("zz") else "yy")
    for path in (
        tampered,
        "/t/c/https%3A%2F%2Fevil.example.net",
        f"/t/c/{make_token('o', sent.recipients[0].pk)}",
        f"/t/c/{make_token('c', sent.recipients[0].pk, 99999999)}",
        f"/t/c/{make_token('c', 99999999, sent.links[0].pk)}",
        good + "?next=https://evil.example.net",
    ):
        response = web.get(path)
        if path.startswith(good):  # the query string is ignored: the token alone decides
            assert response["Location"] == "https://shop.example.com/sale"
            continue
        assert response.status_code == 404, path
        assert "Location" not in response
    assert Hit.objects.count() == 1


def test_it_does_nothing_for_a_token_of_tenant_a_on_tenant_b(web_b, sent, other_tenant):
    response = web_b.get(click_path(sent.recipients[0], sent.links[0]))
    assert response.status_code == 404
    assert "Location" not in response
    assert Hit.objects.count() == 0
    with schema_context(other_tenant.schema_name):
        assert Hit.objects.count() == 0


def test_it_never_redirects_to_a_scheme_other_than_http(web, tenant):
    campaign = make_sent_campaign(name="Odd", emails=("eve@example.com",), urls=("javascript:alert(1)",))
    response = web.get(click_path(campaign.recipients[0], campaign.links[0]))
    assert response.status_code == 404
    assert "Location" not in response


def test_it_shows_the_invalid_link_page_in_the_tenants_name_without_reflecting_input(web, sent, tenant):
    response = web.get("/t/c/%3Cscript%3Ealert(1)%3Cscript%3E")
    assert response.status_code == 404
    assert tenant.name.encode() in response.content
    assert b"<script" not in response.content.lower()
    assert b"alert(1)" not in response.content
    # With a slash the path is no tracking link at all: Django's own plain 404, reflecting nothing.
    response = web.get("/t/c/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status_code == 404
    assert b"alert(1)" not in response.content


def test_it_answers_a_head_request_but_counts_it_as_a_machine(web, sent):
    response = web.head(click_path(sent.recipients[0], sent.links[0]))
    assert (response.status_code, response["Location"]) == (302, "https://shop.example.com/sale")
    assert list(Hit.objects.values_list("kind", "is_machine")) == [("c", True)]
