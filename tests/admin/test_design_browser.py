"""The block editor in a real browser (Playwright, Debian's chromium) against the live site of
tests/admin (gunicorn, a Celery worker, an SMTP sink): a marketer builds a template from blocks (header,
heading with a variable, text, product cards, button, footer), inserts a variable from the menu,
reorders two blocks, previews it at desktop and mobile widths for a chosen customer, saves and sends a
test; the message in the SMTP sink is responsive, inlined, personalised and has a text part.
Screenshots: design-editor.png, design-mobile.png (var/screenshots/, or SCREENSHOTS_DIR)."""

import http.client
import re

import pytest
from playwright.sync_api import expect

from campaigns.models import EmailTemplate
from customers.models import Product
from tests.admin.live import SCREENSHOTS

pytestmark = pytest.mark.browser


@pytest.mark.django_db  # makes pytest-django set up the test database when this module runs alone
def test_it_serves_the_editors_files(site):
    connection = http.client.HTTPConnection("127.0.0.1", site.processes.port, timeout=10)
    connection.request(
        "GET",
        "/static/campaigns/design/vendor/editorjs-2.31.7.umd.js",
        headers={"Host": f"{site.domain}:{site.processes.port}"},
    )
    response = connection.getresponse()
    assert response.status == 200 and len(response.read()) > 100_000
    connection.close()


def _products(site):
    def create():
        for sku, name, price in (("TEA-1", "Sencha", "12.50"), ("TEA-2", "Darjeeling", "15.00")):
            Product.objects.update_or_create(
                sku=sku,
                defaults={
                    "name": name,
                    "url": f"https://shop.example/p/{sku}",
                    "image_url": f"https://shop.example/p/{sku}.jpg",
                    "price": price,
                    "currency": "EUR",
                },
            )

    site.run(create)


def _block_types(page):
    return page.evaluate("() => window.designEditor.save().then(o => o.blocks.map(b => b.type))")


def test_it_builds_previews_saves_and_test_sends_a_block_template(marketer_page, site):
    _products(site)
    page = marketer_page
    page.goto(site.url + "/admin/campaigns/emailtemplate/add/")
    page.fill("#id_name", "Block newsletter")
    page.fill("#id_subject", "Fresh teas for {{ customer.first_name|default:'you' }}")
    editor = page.locator("#design-editor")
    expect(editor).to_have_attribute("data-mode", "blocks")  # a new template starts from blocks
    expect(editor).to_have_attribute("data-ready", "true")
    expect(page.locator("#id_html_body")).to_be_hidden()
    assert _block_types(page) == ["header", "heading", "text", "button", "footer"]

    # A variable from the menu into the text block, where the caret is.
    text = page.locator(".design-block[data-type=text] .design-rich")
    text.click()
    page.keyboard.press("End")
    page.keyboard.type(" Dear ")
    page.select_option("#design-variables", label="First name (or “there”)")
    expect(text).to_contain_text('Dear {{ customer.first_name|default:"there" }}')

    # Product cards after the text, then the button moved above them (as the block menu's "move up").
    page.evaluate(
        "() => window.designEditor.blocks.insert('products', {source: 'skus', skus: ['TEA-1', 'TEA-2'],"
        " per_row: 2, button_label: 'Buy'}, {}, 3, true)"
    )
    expect(page.locator(".design-block[data-type=products]")).to_have_count(1)
    page.evaluate("() => window.designEditor.blocks.move(3, 4)")
    assert _block_types(page) == ["header", "heading", "text", "button", "products", "footer"]

    # The preview follows, for the chosen customer, side by side at 600 and 375 px.
    page.fill("#design-customer", "bence.nagy@example.com")
    desktop = page.frame_locator("#design-preview-desktop")
    expect(desktop.locator("h1")).to_contain_text("Hello Bence", timeout=15_000)
    expect(desktop.locator("body")).to_contain_text("Dear Bence")
    expect(desktop.locator("body")).to_contain_text("Darjeeling")
    mobile = page.locator("#design-preview-mobile").element_handle().content_frame()
    expect(page.frame_locator("#design-preview-mobile").locator("body")).to_contain_text("Sencha")
    widths = mobile.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"horizontal scroll at 375 px: {widths}"
    assert page.locator("#design-errors").inner_text() == ""
    # The editor and both previews in one picture: a viewport tall enough to hold them unscrolled.
    page.set_viewport_size({"width": 1440, "height": 2600})
    page.evaluate("() => window.scrollTo(0, 0)")
    expect(desktop.locator("h1")).to_contain_text("Hello Bence")
    box = page.locator("#design-editor").bounding_box()
    left = max(box["x"] - 24, 0)
    page.screenshot(
        path=_shot_path("design-editor"),
        clip={
            "x": left,
            "y": max(box["y"] - 24, 0),
            "width": min(box["width"] + 48, 1440 - left),
            "height": box["height"] + 48,
        },
    )
    page.set_viewport_size({"width": 1440, "height": 900})
    page.locator("#design-preview-mobile").screenshot(path=_shot_path("design-mobile"))

    # A test copy of the design as it is in the editor, from beside the preview.
    page.fill("#design-test-emails", "anna.kovacs@example.com")
    page.click("#design-test-send")
    expect(page.locator("#design-test-result")).to_have_text("Test copy sent to anna.kovacs@example.com.")
    site.sink.wait_for(lambda rcpts, msg: msg["Subject"] == "[Test] Fresh teas for Anna")

    page.click("button[name=_continue]")
    page.wait_for_url(re.compile(r"/admin/campaigns/emailtemplate/\d+/change/"))
    template = site.run(lambda: EmailTemplate.objects.get(name="Block newsletter"))
    assert [block["type"] for block in template.design["blocks"]] == [
        "header",
        "heading",
        "text",
        "button",
        "products",
        "footer",
    ]
    assert "@media" in template.html_body and "Sencha" in template.html_body
    assert 'Dear {{ customer.first_name|default:"there" }}' in template.html_body
    assert page.errors == [] and page.dialogs.seen == []

    # The saved design opens in the editor again; a test copy goes to a known customer.
    expect(page.locator("#design-editor")).to_have_attribute("data-mode", "blocks")
    expect(page.locator(".design-block")).to_have_count(6)
    page.goto(
        site.url + f"/admin/campaigns/emailtemplate/{template.pk}/preview/?customer=bence.nagy@example.com"
    )
    page.fill("#test-send-emails", "bence.nagy@example.com")
    page.click("#test-send-submit")
    expect(page.locator("body")).to_contain_text("Test copy sent to bence.nagy@example.com.")
    [(rcpts, message)] = site.sink.wait_for(
        lambda rcpts, msg: msg["Subject"] == "[Test] Fresh teas for Bence"
    )
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "@media only screen and (min-width:480px)" in html  # responsive
    assert 'style="' in html and "<mj-" not in html  # inlined, compiled
    assert "Hello Bence" in html and "Dear Bence" in html and "Dear Bence" in text
    assert "https://shop.example/p/TEA-1" in html and "https://shop.example/p/TEA-1" in text
    assert re.search(r'href="[^"]+/v/test"', html)  # a test copy's web version link names no one
    assert "Sencha" in text and "12.50 EUR" in text


def _shot_path(name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")
