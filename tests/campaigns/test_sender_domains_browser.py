"""In a real browser (Playwright with Debian's chromium) against the live site: a marketer adds a sender
domain, copies the records to publish, publishes them (to the site's DNS server on loopback), verifies
now and sees the domain verified."""

import re

import pytest
from playwright.sync_api import expect

from campaigns.models import SenderDomain
from tests.admin.conftest import chromium, marketer_page, screenshot, site  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_it_takes_a_marketer_from_a_new_domain_to_a_verified_one(marketer_page, site):  # noqa: F811
    page = marketer_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page.click("text=Sender domains")
    page.wait_for_url(re.compile(r"/admin/campaigns/senderdomain/$"))
    page.goto(site.url + "/admin/campaigns/senderdomain/add/")
    page.fill("#id_domain", "Hírlevél.Teashop.example")
    page.click("button[name=_save]")

    page.wait_for_url(re.compile(r"/admin/campaigns/senderdomain/\d+/change/$"))
    expect(page.locator("#sender-domain-status")).to_have_attribute("data-status", "pending")
    records = []
    for purpose in ("verification", "dkim"):
        row = page.locator(f"#record-{purpose}")
        expect(row).to_have_attribute("data-status", "unchecked")
        records.append(
            {
                "type": row.locator(".record-type").inner_text().strip(),
                "name": row.locator(".record-name").inner_text().strip(),
                "value": row.locator(".record-value").inner_text().strip(),
            }
        )
    assert records[0]["name"] == "_crm-verification.xn--hrlevl-fva1a.teashop.example"
    assert records[1]["value"].startswith("v=DKIM1; k=rsa; p=")
    # The copy button puts the exact value on the clipboard.
    page.locator("#record-dkim .copy-value").click()
    expect(page.locator("#record-dkim .copy-value")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == records[1]["value"]

    # Verify before publishing: failed, and the page says what is missing.
    page.click("#sender-domain-verify-submit")
    expect(page.locator("#sender-domain-status")).to_have_attribute("data-status", "failed")
    expect(page.locator("#record-verification")).to_have_attribute("data-status", "missing")

    # Published at the DNS provider (the site's DNS server), verified now.
    for record in records:
        site.dns.publish(record["name"], record["value"])
    page.click("#sender-domain-verify-submit")
    expect(page.locator("#sender-domain-status")).to_have_attribute("data-status", "verified")
    expect(page.locator("#record-verification")).to_have_attribute("data-status", "found")
    expect(page.locator("#record-dkim")).to_have_attribute("data-status", "found")
    expect(page.locator("body")).to_contain_text("is verified: its addresses can send.")
    screenshot(page, "sender-domain-verified")

    assert (
        site.run(
            lambda: SenderDomain.objects.filter(domain="xn--hrlevl-fva1a.teashop.example").values_list(
                "status", flat=True
            )[0]
        )
        == "verified"
    )
    assert page.errors == []
