"""The block editor's designs (PRODUCT.md "Email design"): blocks -> MJML -> HTML -> inlined CSS ->
text, with the real MRML and css-inline; strict validation; sizes bounded; data never becomes code."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns import email_templates
from campaigns.design import MAX_BLOCKS, MAX_DESIGN_BYTES, design_compile
from campaigns.models import EmailTemplate
from campaigns.rendering import render_message
from customers.models import Customer, Order, OrderItem, Product
from tests.campaigns.conftest import HTML, make_campaign, make_customers, static_segment

BRAND = {
    "logo_url": "https://shop.example/logo.png",
    "primary": "#0f766e",
    "text": "#111827",
    "background": "#eeeeee",
    "font": "Georgia",
    "font_stack": "Georgia, serif",
    "postal_address": "1 Tea Street\nBudapest",
    "name": "Tea Shop",
}

RECIPE = {
    "blocks": [
        {"id": "a1", "type": "header", "data": {"link": "https://shop.example/"}},
        {"type": "heading", "data": {"text": 'Hello {{ customer.first_name|default:"there" }}'}},
        {
            "type": "text",
            "data": {"text": 'Our <b>spring</b> teas are in. <a href="https://shop.example/new">See</a>'},
        },
        {"type": "image", "data": {"url": "https://shop.example/hero.jpg", "alt": "Teas", "width": 560}},
        {
            "type": "button",
            "data": {"label": "Shop now", "link": "https://shop.example/sale", "align": "center"},
        },
        {
            "type": "columns",
            "data": {
                "columns": [
                    {"text": "Green"},
                    {"text": "Black", "link": "https://shop.example/b", "label": "Go"},
                ]
            },
        },
        {"type": "divider", "data": {"thickness": 2}},
        {"type": "spacer", "data": {"height": 20}},
        {"type": "social", "data": {"links": [{"network": "instagram", "url": "https://instagram.com/tea"}]}},
        {"type": "footer", "data": {"text": "You get this because you bought from us."}},
    ]
}


def _error(design):
    with pytest.raises(ValidationError) as caught:
        design_compile(design, brand=BRAND)
    return caught.value.message_dict["design"][0]


def test_it_compiles_a_recipe_into_responsive_inlined_html_and_a_text_part(tenant):
    compiled = design_compile(RECIPE, brand=BRAND)
    html = compiled["html"]
    assert "@media only screen and (min-width:480px)" in html  # MJML's responsive columns
    assert 'style="' in html and "<mj-" not in html
    assert 'href="https://shop.example/sale"' in html and "Shop now" in html
    assert "https://shop.example/logo.png" in html  # the brand logo by default
    assert "#0f766e" in html  # the brand colour on the button
    assert "Georgia, serif" in html or "Georgia, 'Times New Roman', serif" in html
    assert 'href="{{ unsubscribe_url }}"' in html and 'href="{{ web_version_url }}"' in html
    assert "1 Tea Street<br>Budapest" in html
    assert '{{ customer.first_name|default:"there" }}' in html
    text = compiled["text"]
    assert 'Hello {{ customer.first_name|default:"there" }}' in text
    assert "https://shop.example/sale" in text and "|" not in text.splitlines()[0]
    assert compiled["warnings"] == []


def test_it_personalises_the_compiled_design_with_the_sandboxed_renderer(tenant):
    compiled = design_compile(RECIPE, brand=BRAND)
    context = {
        "customer": {"first_name": "Anna"},
        "unsubscribe_url": "https://t.example/u/x",
        "web_version_url": "https://t.example/v/y",
    }
    rendered = render_message(subject="Hi", html=compiled["html"], text=compiled["text"], context=context)
    assert "Hello Anna" in rendered.html and "Hello Anna" in rendered.text
    assert 'href="https://t.example/v/y"' in rendered.html and "https://t.example/u/x" in rendered.text
    nobody = render_message(subject="Hi", html=compiled["html"], context={"customer": {}})
    assert "Hello there" in nobody.html


@pytest.mark.parametrize(
    ("design", "expected"),
    [
        ({"blocks": [{"type": "marquee", "data": {}}]}, "blocks[0]: unknown block type 'marquee'"),
        (
            {
                "blocks": [
                    {"type": "button", "data": {"label": "x", "link": "https://a.example", "onclick": "x"}}
                ]
            },
            "blocks[0] (button): unknown attribute 'onclick'",
        ),
        ({"blocks": [{"type": "button", "data": {"label": "x"}}]}, "blocks[0] (button).link: is required."),
        (
            {"blocks": [{"type": "button", "data": {"label": "x", "link": "javascript:alert(1)"}}]},
            "blocks[0] (button).link: must start with https://",
        ),
        ({"blocks": [{"type": "text", "data": {"text": "x", "color": "red;x"}}]}, "blocks[0] (text).color:"),
        ({"blocks": [{"type": "spacer", "data": {"height": 10**9}}]}, "blocks[0] (spacer).height: must be"),
        (
            {"blocks": [{"type": "text", "data": {"text": "{% for x in y %}{% endfor %}"}}]},
            "blocks[0] (text).text: only variables",
        ),
        (
            {"blocks": [{"type": "text", "data": {"text": "{{ settings.SECRET_KEY }}"}}]},
            "unknown variable 'settings.SECRET_KEY'",
        ),
        ({"blocks": [{"type": "text", "data": {"text": "x" * 10_001}}]}, "is too long (10001 characters"),
        ({"blocks": [], "extra": 1}, "unknown design attribute 'extra'"),
        ({"blocks": []}, "blocks: a design needs at least one block."),
        (
            {"blocks": [{"type": "columns", "data": {"columns": [{"text": "a"}] * 4}}]},
            "blocks[0] (columns).columns: must have 2 to 3 items",
        ),
    ],
)
def test_it_refuses_a_bad_block_naming_it(tenant, design, expected):
    assert expected in _error(design)


def test_it_refuses_a_design_built_to_eat_memory_before_building_it(tenant):
    too_many = {"blocks": [{"type": "spacer", "data": {}}] * (MAX_BLOCKS + 1)}
    assert f"at most {MAX_BLOCKS} blocks" in _error(too_many)
    huge = json.dumps({"blocks": [{"type": "text", "data": {"text": "y" * (MAX_DESIGN_BYTES + 10)}}]})
    assert "too large" in _error(huge)
    deep = "[" * 200_000 + "]" * 200_000
    assert "too large" in _error(deep)
    nested = "[" * 50_000 + "]" * 50_000
    assert "not valid JSON" in _error(nested) or "must be a JSON object" in _error(nested)


def test_it_strips_scripts_and_event_handlers_from_rich_text(tenant):
    design = {
        "blocks": [
            {
                "type": "text",
                "data": {
                    "text": '<script>alert(1)</script><img src=x onerror=alert(1)><b onclick="x">ok</b>'
                },
            }
        ]
    }
    html = design_compile(design, brand=BRAND)["html"]
    assert "<script" not in html and "onerror" not in html and "onclick" not in html
    assert "<b>ok</b>" in html


def test_it_never_lets_product_data_become_template_code(tenant):
    Product.objects.create(
        sku="EVIL-1",
        name='{% now "Y" %}{{ customer.email }}',
        url="https://shop.example/p/1",
        price=Decimal("5.00"),
        currency="EUR",
    )
    design = {"blocks": [{"type": "products", "data": {"source": "skus", "skus": ["EVIL-1"]}}]}
    html = design_compile(design, brand=BRAND)["html"]
    rendered = render_message(subject="x", html=html, context={"customer": {"email": "secret@example.com"}})
    assert '{% now "Y" %}{{ customer.email }}' in rendered.html
    assert "secret@example.com" not in rendered.html


def test_it_shows_products_by_sku_skipping_unknown_and_out_of_stock_ones(tenant):
    Product.objects.create(
        sku="TEA-1",
        name="Green tea",
        url="https://shop.example/t1",
        price=Decimal("9.90"),
        currency="EUR",
        image_url="https://shop.example/t1.jpg",
    )
    Product.objects.create(
        sku="TEA-2",
        name="Black tea",
        url="https://shop.example/t2",
        price=Decimal("7"),
        currency="EUR",
        in_stock=False,
    )
    design = {
        "blocks": [
            {
                "type": "products",
                "data": {"source": "skus", "skus": ["TEA-2", "TEA-1", "NOPE"], "button_label": "Buy"},
            }
        ]
    }
    compiled, rendered = email_templates.design_preview(design=design)
    assert "Green tea" in rendered.html and "9.90 EUR" in rendered.html
    assert "Black tea" not in rendered.html and "Black tea" not in rendered.text
    assert "https://shop.example/t1.jpg" in rendered.html
    assert compiled["warnings"] == ["Products not shown (unknown or out of stock): TEA-2, NOPE."]
    # The sold-out product's card is compiled all the same: the sender decides its stock at send time.
    assert "<!--crm-card:TEA-2-->" in compiled["html"] and "NOPE" not in compiled["html"]


def test_it_shows_the_best_sellers_of_the_last_30_days(tenant):
    customer = Customer.objects.create(email="buyer@example.com")
    for sku, name in (("A", "Alpha"), ("B", "Beta"), ("C", "Gamma")):
        Product.objects.create(sku=sku, name=name, url=f"https://shop.example/{sku}", price=1, currency="EUR")
    recent = Order.objects.create(customer=customer, external_id="o1", total=10, status="paid")
    OrderItem.objects.create(order=recent, sku="B", quantity=5)
    OrderItem.objects.create(order=recent, sku="C", quantity=2)
    old = Order.objects.create(
        customer=customer, external_id="o2", total=10, placed_at=timezone.now() - timedelta(days=40)
    )
    OrderItem.objects.create(order=old, sku="A", quantity=100)
    design = {"blocks": [{"type": "products", "data": {"source": "bestsellers", "limit": 2}}]}
    html = design_compile(design, brand=BRAND)["html"]
    assert "Beta" in html and "Gamma" in html and "Alpha" not in html
    assert html.index("Beta") < html.index("Gamma")


def test_it_stores_the_design_and_its_compiled_output_on_a_template(tenant):
    template = email_templates.template_create(name="Spring", subject="Hi", design=RECIPE)
    template.refresh_from_db()
    assert template.design == RECIPE
    assert "@media" in template.html_body and "Shop now" in template.text_body
    email_templates.template_update(
        template=template, design={"blocks": [{"type": "text", "data": {"text": "Only this"}}]}
    )
    template.refresh_from_db()
    assert "Only this" in template.html_body and "Shop now" not in template.html_body
    raw = email_templates.template_create(
        name="Raw", subject="Hi", html_body="<p>Raw {{ customer.first_name }}</p>"
    )
    assert raw.design is None and raw.html_body == "<p>Raw {{ customer.first_name }}</p>"


def test_it_answers_400_naming_the_block_through_the_api_and_stores_nothing(api):
    bad = {"blocks": [{"type": "button", "data": {"label": "x", "link": "https://a.example", "size": 3}}]}
    before = EmailTemplate.objects.count()
    response = api.post("/api/templates", {"name": "T", "subject": "S", "design": bad}, format="json")
    assert response.status_code == 400
    assert "blocks[0] (button): unknown attribute 'size'" in response.json()["design"][0]
    assert EmailTemplate.objects.count() == before
    good = api.post("/api/templates", {"name": "T", "subject": "S", "design": RECIPE}, format="json")
    assert good.status_code == 201, good.content
    assert good.json()["design"] == RECIPE and "@media" in good.json()["html_body"]


def test_it_keeps_raw_html_campaigns_as_they_were(tenant):
    campaign = make_campaign(static_segment(make_customers(1)))
    assert campaign.design is None and campaign.html_body == HTML


def test_it_refuses_nul_characters_and_non_objects(api):
    before = EmailTemplate.objects.count()
    design = {"blocks": [{"type": "text", "data": {"text": "a\x00b"}}]}
    response = api.post("/api/templates", {"name": "T", "subject": "S", "design": design}, format="json")
    assert response.status_code == 400 and "NUL" in response.json()["design"][0]
    for value in ([1, 2], "[]", 5):
        response = api.post("/api/templates", {"name": "T", "subject": "S", "design": value}, format="json")
        assert response.status_code == 400, value
    assert EmailTemplate.objects.count() == before
