"""Sender domains (PRODUCT.md "Sender identity"): a tenant adds a domain, publishes two TXT records,
verifies them against the DNS (a real DNS server on loopback), and only then sends from it."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ValidationError
from django_tenants.utils import schema_context

from campaigns import senders
from campaigns.models import Campaign, SenderDomain
from campaigns.readiness import campaign_checklist
from tenancy.models import Tenant
from tenancy.tenant_settings import tenant_settings_update
from tests.conftest import verified_sender_domain
from tests.dns_server import silent_nameserver

from .conftest import HTML, make_customers, static_segment

URL = "/api/sender-domains"


def _records(body):
    return {record["purpose"]: record for record in body["records"]}


def _add(api, domain="shop.example"):
    response = api.post(URL, {"domain": domain}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _verify(api, domain_id):
    response = api.post(f"{URL}/{domain_id}/verify")
    assert response.status_code == 200, response.content
    return response.json()


# --- adding a domain ---------------------------------------------------------------------------------


def test_it_adds_a_domain_with_the_two_records_to_publish(api, tenant):
    body = _add(api, " Shop.Example. ")

    assert body["domain"] == "shop.example"
    assert body["status"] == "pending"
    assert body["verified_at"] is None and body["last_checked_at"] is None
    records = _records(body)
    row = SenderDomain.objects.get(pk=body["id"])
    assert records["verification"] == {
        "purpose": "verification",
        "name": "_crm-verification.shop.example",
        "type": "TXT",
        "value": f"crm-verify={row.verification_token}",
        "status": "unchecked",
        "found": [],
        "detail": "Not checked yet.",
    }
    assert records["dkim"]["name"] == f"{body['dkim_selector']}._domainkey.shop.example"
    assert records["dkim"]["type"] == "TXT"
    value = records["dkim"]["value"]
    assert value.startswith("v=DKIM1; k=rsa; p=")
    public = serialization.load_der_public_key(base64.b64decode(value.split("p=", 1)[1]))
    assert public.key_size == 2048
    # The private key is nowhere in the answer, and stored only encrypted.
    assert "PRIVATE" not in str(body) and row.dkim_private_key_encrypted not in str(body)
    assert b"PRIVATE KEY" not in row.dkim_private_key_encrypted.encode()
    key = senders._fernet().decrypt(row.dkim_private_key_encrypted.encode())
    private = serialization.load_pem_private_key(key, password=None)
    assert private.public_key().public_numbers() == public.public_numbers()

    assert api.get(f"{URL}/{body['id']}").json() == body
    assert api.get(URL).json()["results"] == [body]


def test_it_stores_international_domains_in_their_idna_form(api, tenant):
    body = _add(api, "Bücher.Example")
    assert body["domain"] == "xn--bcher-kva.example"
    assert _records(body)["verification"]["name"] == "_crm-verification.xn--bcher-kva.example"


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "   ",
        "localhost",
        "news@shop.example",
        "https://shop.example/",
        "shop.example:25",
        "1.2.3.4",
        "-bad-.example",
        "a" * 64 + ".example",
        "shop..example",
        "shop example.com",
        None,
        12,
    ],
)
def test_it_refuses_what_is_not_a_domain_naming_the_field_and_changes_nothing(api, tenant, domain):
    response = api.post(URL, {"domain": domain}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["domain"]
    assert SenderDomain.objects.count() == 0


def test_it_refuses_a_domain_the_tenant_already_has(api, tenant):
    first = _add(api, "shop.example")
    response = api.post(URL, {"domain": "SHOP.example"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"domain": ["shop.example is already a sender domain of this account."]}
    assert list(SenderDomain.objects.values_list("id", flat=True)) == [first["id"]]


def test_it_gives_each_domain_its_own_token_selector_and_key(api, tenant):
    one, two = _add(api, "one.example"), _add(api, "two.example")
    rows = {row.domain: row for row in SenderDomain.objects.all()}
    assert rows["one.example"].verification_token != rows["two.example"].verification_token
    assert one["dkim_selector"] != two["dkim_selector"]
    assert _records(one)["dkim"]["value"] != _records(two)["dkim"]["value"]


# --- verifying it ----------------------------------------------------------------------------------


def test_it_verifies_a_domain_once_both_records_are_published(api, tenant, dns_server):
    body = _add(api)
    dns_server.publish_records(body["records"])

    verified = _verify(api, body["id"])

    assert verified["status"] == "verified"
    assert verified["verified_at"] is not None and verified["last_checked_at"] is not None
    records = _records(verified)
    assert records["verification"]["status"] == "found"
    assert records["verification"]["found"] == [records["verification"]["value"]]
    assert records["dkim"]["status"] == "found"
    assert records["dkim"]["detail"] == "Published."
    assert SenderDomain.objects.get(pk=body["id"]).status == "verified"
    # Checking again keeps the time it was first verified.
    assert _verify(api, body["id"])["verified_at"] == verified["verified_at"]


def test_it_fails_verification_naming_what_is_missing_or_different(api, tenant, dns_server):
    body = _add(api)
    records = _records(body)
    dns_server.publish(records["verification"]["name"], records["verification"]["value"])
    dns_server.publish(records["dkim"]["name"], "v=DKIM1; k=rsa; p=c29tZW9uZSBlbHNlcw==")

    failed = _verify(api, body["id"])

    assert failed["status"] == "failed"
    assert failed["verified_at"] is None
    found = _records(failed)
    assert found["verification"]["status"] == "found"
    assert found["dkim"]["status"] == "mismatch"
    assert found["dkim"]["found"] == ["v=DKIM1; k=rsa; p=c29tZW9uZSBlbHNlcw=="]
    assert found["dkim"]["detail"] == "TXT records are there, but none with this value."

    dns_server.unpublish(records["dkim"]["name"])
    missing = _records(_verify(api, body["id"]))["dkim"]
    assert (missing["status"], missing["found"]) == ("missing", [])
    assert missing["detail"] == "No TXT record at this name yet."


def test_it_accepts_the_dkim_record_however_the_provider_spaces_it(api, tenant, dns_server):
    body = _add(api)
    records = _records(body)
    key = records["dkim"]["value"].split("p=", 1)[1]
    dns_server.publish(records["verification"]["name"], records["verification"]["value"])
    dns_server.publish(records["dkim"]["name"], f"v=DKIM1;k=rsa;  p={key[:100]} {key[100:]}")
    assert _verify(api, body["id"])["status"] == "verified"


def test_it_reports_a_dns_failure_as_a_result_and_keeps_the_status(api, tenant, dns_server, settings):
    body = _add(api)
    dns_server.publish_records(body["records"])
    assert _verify(api, body["id"])["status"] == "verified"

    # The DNS answers SERVFAIL for the verification record: that proves nothing, the domain stays verified.
    dns_server.fail(_records(body)["verification"]["name"])
    result = _verify(api, body["id"])
    assert result["status"] == "verified"
    record = _records(result)["verification"]
    assert record["status"] == "error"
    assert record["detail"].startswith("No nameserver gave an answer")

    # A nameserver that never answers: a timeout, told as such.
    sock, nameserver = silent_nameserver()
    try:
        settings.DNS_NAMESERVERS = [nameserver]
        settings.DNS_TIMEOUT_SECONDS = 0.3
        result = _verify(api, body["id"])
    finally:
        sock.close()
    assert result["status"] == "verified"
    assert {r["status"] for r in result["records"]} == {"error"}
    assert _records(result)["dkim"]["detail"] == "The DNS did not answer within 0.3 s."
    # Nobody listening at all is an answer-less result too, never a 500.
    settings.DNS_NAMESERVERS = ["127.0.0.1:9"]
    assert {r["status"] for r in _verify(api, body["id"])["records"]} == {"error"}


def test_it_fails_a_verified_domain_whose_records_are_gone_and_refuses_its_senders(api, tenant, dns_server):
    body = _add(api)
    dns_server.publish_records(body["records"])
    _verify(api, body["id"])
    campaign = Campaign.objects.create(
        name="Spring",
        subject="Hi",
        html_body=HTML,
        segment=static_segment(make_customers(2)),
        from_email="news@shop.example",
    )

    dns_server.unpublish(_records(body)["verification"]["name"])
    assert _verify(api, body["id"])["status"] == "failed"

    response = api.post(f"/api/campaigns/{campaign.pk}/send")
    assert response.status_code == 400
    [message] = response.json()["from_email"]
    assert message.startswith("The sender domain shop.example failed its last DNS check at ")
    assert "verify it under Sender domains" in message
    campaign.refresh_from_db()
    assert campaign.status == "draft" and not campaign.recipients.exists()

    # Published again and verified again: it sends.
    dns_server.publish_records([_records(body)["verification"]])
    assert _verify(api, body["id"])["status"] == "verified"
    assert api.post(f"/api/campaigns/{campaign.pk}/send").status_code == 202


# --- other tenants --------------------------------------------------------------------------------


def test_it_never_lets_another_tenant_verify_or_send_from_a_tenants_domain(
    api, api_b, tenant, other_tenant, dns_server
):
    mine = _add(api)
    dns_server.publish_records(mine["records"])
    assert _verify(api, mine["id"])["status"] == "verified"

    # Tenant B adds the same domain: its own token and key, which the domain's DNS does not carry.
    theirs = _add(api_b)
    assert _records(theirs)["verification"]["value"] != _records(mine)["verification"]["value"]
    checked = _verify(api_b, theirs["id"])
    assert checked["status"] == "failed"
    assert _records(checked)["verification"]["status"] == "mismatch"
    assert _records(checked)["dkim"]["status"] == "missing"  # B's selector is not published

    # B's campaign from A's domain: a 400 naming from_email, nothing created.
    response = api_b.post(
        "/api/campaigns",
        {"name": "Spoof", "html_body": HTML, "from_email": "news@shop.example"},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()) == ["from_email"]
    with schema_context(other_tenant.schema_name):
        assert not Campaign.objects.exists()
        assert SenderDomain.objects.get().status == "failed"
    # And B's default sender cannot be set to it either.
    with pytest.raises(Exception) as refused:
        tenant_settings_update(tenant=other_tenant, changes={"from_email": "news@shop.example"})
    assert list(refused.value.message_dict) == ["from_email"]
    assert Tenant.objects.get(pk=other_tenant.pk).from_email == ""


def test_it_hides_a_tenants_domains_from_another_tenant(api, api_b, tenant):
    mine = _add(api)
    assert api_b.get(URL).json()["results"] == []
    for response in (
        api_b.get(f"{URL}/{mine['id']}"),
        api_b.post(f"{URL}/{mine['id']}/verify"),
        api_b.delete(f"{URL}/{mine['id']}"),
    ):
        assert response.status_code == 404
    with schema_context(tenant.schema_name):
        assert SenderDomain.objects.get(pk=mine["id"]).status == "pending"


def test_it_requires_authentication(anon_api, tenant):
    assert anon_api.get(URL).status_code == 401
    assert anon_api.post(URL, {"domain": "shop.example"}, format="json").status_code == 401
    assert SenderDomain.objects.count() == 0


# --- the from_email rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_email", "allowed"),
    [
        ("news@shop.example", True),
        ("News@SHOP.Example", True),
        ("noreply@vecton.hu", True),  # the platform's MAIL_FROM_ADDRESS
        ("other@vecton.hu", False),  # the platform's domain is not the platform's address
        ("news@sub.shop.example", False),  # exact domains only
        ("news@pending.example", False),
        ("news@unknown.example", False),
    ],
)
def test_it_accepts_a_campaign_sender_only_on_a_verified_domain_or_the_platform_address(
    api, tenant, settings, from_email, allowed
):
    settings.MAIL_FROM_ADDRESS = "noreply@vecton.hu"
    verified_sender_domain("shop.example")
    senders.sender_domain_create(domain="pending.example")
    response = api.post("/api/campaigns", {"name": "C", "from_email": from_email}, format="json")
    if allowed:
        assert response.status_code == 201, response.content
        return
    assert response.status_code == 400
    assert list(response.json()) == ["from_email"]
    assert not Campaign.objects.exists()


def test_it_refuses_changing_a_campaign_to_an_unverified_sender_and_changes_nothing(api, tenant):
    verified_sender_domain("shop.example")
    campaign = Campaign.objects.create(name="C", from_email="news@shop.example")
    response = api.patch(
        f"/api/campaigns/{campaign.pk}", {"from_email": "news@elsewhere.example"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "from_email": [
            "'news@elsewhere.example' is not on a verified sender domain of this account: add "
            "elsewhere.example under Sender domains, publish its DNS records and verify it (or send from "
            "noreply@vecton.hu)."
        ]
    }
    campaign.refresh_from_db()
    assert campaign.from_email == "news@shop.example"


def test_it_refuses_to_send_a_draft_saved_before_the_rule_saying_how_to_fix_it(api, tenant):
    # A draft from before sender domains existed: editable, but not sendable.
    campaign = Campaign.objects.create(
        name="Old",
        subject="Hi",
        html_body=HTML,
        segment=static_segment(make_customers(1)),
        from_email="a@old.example",
    )
    assert api.patch(f"/api/campaigns/{campaign.pk}", {"name": "Old draft"}, format="json").status_code == 200
    for action in ("send", "test"):
        body = {"emails": ["me@example.com"]} if action == "test" else {}
        response = api.post(f"/api/campaigns/{campaign.pk}/{action}", body, format="json")
        assert response.status_code == 400
        assert "add old.example under Sender domains" in response.json()["from_email"][0]
    campaign.refresh_from_db()
    assert campaign.status == "draft" and not campaign.recipients.exists()


def test_it_refuses_a_tenants_legacy_default_sender_at_send_time_saying_where_to_fix_it(api, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(from_email="news@legacy.example")
    campaign = Campaign.objects.create(
        name="Default sender", subject="Hi", html_body=HTML, segment=static_segment(make_customers(1))
    )
    response = api.post(f"/api/campaigns/{campaign.pk}/send")
    assert response.status_code == 400
    [message] = response.json()["from_email"]
    assert message.startswith("The account's default sender address (Settings) is refused.")
    assert "add legacy.example under Sender domains" in message
    campaign.refresh_from_db()
    assert campaign.status == "draft"

    checks = {key: (ok, detail) for key, _label, ok, detail in campaign_checklist(campaign=campaign)}
    assert checks["sender"][0] is False
    assert "legacy.example" in checks["sender"][1]


def test_it_checks_the_tenants_default_sender_when_it_changes(tenant):
    with pytest.raises(ValidationError) as refused:
        tenant_settings_update(
            tenant=tenant, changes={"from_email": "news@unknown.example", "from_name": "X"}
        )
    assert list(refused.value.message_dict) == ["from_email"]
    tenant.refresh_from_db()
    assert (tenant.from_email, tenant.from_name) == ("", "")

    verified_sender_domain("shop.example")
    assert tenant_settings_update(tenant=tenant, changes={"from_email": "News@Shop.Example"}) == [
        "from_email"
    ]
    assert Tenant.objects.get(pk=tenant.pk).from_email == "news@shop.example"
    # A legacy sender left as it is does not block the other settings.
    Tenant.objects.filter(pk=tenant.pk).update(from_email="news@legacy.example")
    tenant.refresh_from_db()
    assert tenant_settings_update(
        tenant=tenant, changes={"from_email": "news@legacy.example", "send_rate_per_second": 5}
    ) == ["send_rate_per_second"]


# --- deleting --------------------------------------------------------------------------------------


def test_it_deletes_a_domain_but_not_while_something_sends_from_it(api, tenant):
    domain = verified_sender_domain("shop.example")
    campaign = Campaign.objects.create(name="Live", from_email="news@shop.example", status="scheduled")

    response = api.delete(f"{URL}/{domain.pk}")
    assert response.status_code == 409
    assert "The campaign “Live” (scheduled) sends from shop.example" in response.json()["detail"]
    assert SenderDomain.objects.filter(pk=domain.pk).exists()

    Campaign.objects.filter(pk=campaign.pk).update(status="cancelled")
    Tenant.objects.filter(pk=tenant.pk).update(from_email="news@shop.example")
    response = api.delete(f"{URL}/{domain.pk}")
    assert response.status_code == 409
    assert "default sender" in response.json()["detail"]

    Tenant.objects.filter(pk=tenant.pk).update(from_email="")
    assert api.delete(f"{URL}/{domain.pk}").status_code == 204
    assert not SenderDomain.objects.exists()
