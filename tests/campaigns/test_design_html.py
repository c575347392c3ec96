"""Rendering quality of every shipped recipe (campaigns/design_recipes.py) and a full design: the compiled
HTML passes html-validate's checks that matter for email, and shows without horizontal scroll at 375 px
in chromium (Debian's, through Playwright).

html-validate (tests/html/, `npm ci` there; make test does it) runs its recommended rules except those
that email HTML breaks on purpose (tests/html/email.htmlvalidate.json): inline styles, conditional
comments for Outlook, presentational attributes (cellpadding, align, bgcolor), tables with
role="presentation" and MJML's height="auto" on images. What stays checked: structure (closing and
nesting, duplicate ids and attributes, permitted content), a non-empty title, alt texts, link texts."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from campaigns.design import design_compile
from campaigns.design_recipes import RECIPES
from customers.models import Customer, Order, OrderItem, Product
from tests.admin.live import CHROMIUM, CHROMIUM_ARGS
from tests.campaigns.test_design import BRAND, RECIPE
from tests.conftest import IN_CI

HTML_TESTS = Path(__file__).resolve().parents[1] / "html"
VALIDATOR = HTML_TESTS / "node_modules" / ".bin" / "html-validate"
DESIGNS = {**{name: recipe["design"] for name, recipe in RECIPES.items()}, "full": RECIPE}


def _missing(message):
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def products(tenant):
    customer = Customer.objects.create(email="buyer@example.com")
    order = Order.objects.create(customer=customer, external_id="o1", total=10, status="paid")
    for n in range(1, 4):
        Product.objects.create(
            sku=f"P{n}",
            name=f"A rather long product name number {n} that wraps",
            url=f"https://example.com/p/{n}",
            image_url="https://placehold.co/600x600.png",
            price="19.90",
            currency="EUR",
        )
        OrderItem.objects.create(order=order, sku=f"P{n}", quantity=n)


@pytest.fixture
def compiled(products, tmp_path):
    files = {}
    for name, design in DESIGNS.items():
        path = tmp_path / f"{name}.html"
        path.write_text(design_compile(design, brand=BRAND)["html"])
        files[name] = path
    return files


def test_it_ships_recipes_that_compile_with_product_cards(compiled):
    assert set(compiled) == {"newsletter", "product_launch", "winback", "full"}
    assert "A rather long product name number 3" in compiled["newsletter"].read_text()


def test_it_compiles_every_recipe_to_html_that_html_validate_passes(compiled):
    if not VALIDATOR.exists() or not shutil.which("node"):
        _missing("html-validate is not installed: run `npm ci` in tests/html (make test does)")
    result = subprocess.run(
        [
            str(VALIDATOR),
            "--config",
            str(HTML_TESTS / "email.htmlvalidate.json"),
            *map(str, compiled.values()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_shows_every_recipe_without_horizontal_scroll_at_375_px(compiled):
    if not os.path.exists(CHROMIUM):
        _missing(f"chromium is missing at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 375, "height": 800})
            # No network: the images' boxes come from their width attributes, as in a mail client
            # that blocks images.
            page.route("**/*", lambda route: route.abort())
            for name, path in compiled.items():
                page.set_content(path.read_text())
                width = page.evaluate("() => document.documentElement.scrollWidth")
                assert width <= 375, f"{name}: {width} px wide at 375 px"
        finally:
            browser.close()
