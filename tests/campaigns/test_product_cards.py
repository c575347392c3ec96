"""Product cards at send time (issue 18, campaigns/product_cards.py): a campaign sent days after its
design was saved shows the products as the shop has them now (price, image, stock), and a "last
bought" block shows each recipient their own latest purchases, topped up with the best sellers.
Both cost a query per batch (or per composer), never one per recipient."""

import email
import email.policy
import itertools
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import email_templates, lifecycle, sender
from campaigns.design import design_compile, design_text_again
from campaigns.models import CampaignLink, CampaignRecipient
from campaigns.product_cards import cards_refresh
from campaigns.ratelimit import RateLimiter
from campaigns.tokens import make_token, read_token
from customers.models import Customer, Order, OrderItem, Product

from .conftest import make_campaign, make_customers, static_segment
from .test_design import BRAND, RECIPE

FAST = RateLimiter(rate_per_second=100000)


@pytest.fixture(autouse=True)
def locmem(locmem_mail):
    return locmem_mail


def product(sku, name, price, **fields):
    values = {"url": f"https://shop.example/{sku}", "currency": "EUR", **fields}
    return Product.objects.create(sku=sku, name=name, price=Decimal(price), **values)


ORDER_NUMBERS = itertools.count(1)


TEAS = {"A": "Assam", "B": "Bancha", "C": "Chai", "D": "Darjeeling", "E": "Earl Grey"}


def teas(*skus, sold_out=()):
    """The shop's teas by SKU, at 4.00 each; those in `sold_out` out of stock."""
    for sku in skus:
        product(sku, TEAS[sku], "4.00", in_stock=sku not in sold_out)


def bought(customer, sku, *, days_ago, quantity=1, status="paid"):
    order = Order.objects.create(
        customer=customer,
        external_id=f"o{next(ORDER_NUMBERS)}",
        total=10,
        status=status,
        placed_at=timezone.now() - timedelta(days=days_ago),
    )
    OrderItem.objects.create(order=order, sku=sku, name=sku, quantity=quantity, unit_price=1)


def send(campaign):
    lifecycle.campaign_send_now(campaign=campaign)
    sender.campaign_batches_send(campaign_id=campaign.pk, time_budget=60, limiter=FAST)
    parsed = {}
    for message in mail.outbox:
        parsed_message = email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)
        parsed[message.to[0]] = (
            parsed_message.get_body(("html",)).get_content(),
            parsed_message.get_body(("plain",)).get_content(),
        )
    return parsed


def browser_for(tenant):
    return Client(HTTP_HOST=tenant.get_primary_domain().domain)


def cards(block):
    return {
        "blocks": [
            {"type": "text", "data": {"text": "Our picks"}},
            {"type": "products", "data": block},
            {"type": "footer", "data": {"text": "Tea Shop"}},
        ]
    }


def test_it_shows_todays_price_image_and_stock_when_sent_after_the_design_was_saved(tenant):
    product("TEA-1", "Green tea", "9.90", image_url="https://shop.example/t1-old.jpg")
    product("TEA-2", "Black tea", "7.00")
    customers = make_customers(2, prefix="pc")
    campaign = make_campaign(
        static_segment(customers), design=cards({"source": "skus", "skus": ["TEA-1", "TEA-2"]})
    )
    assert "9.90 EUR" in campaign.html_body and "Black tea" in campaign.html_body
    # Days later, before it goes out: a new price and photo, and one product sold out.
    Product.objects.filter(sku="TEA-1").update(
        price=Decimal("7.50"), image_url="https://shop.example/t1-new.jpg", name="Green tea (new harvest)"
    )
    Product.objects.filter(sku="TEA-2").update(in_stock=False)

    messages = send(campaign)

    assert set(messages) == {"pc0@example.com", "pc1@example.com"}
    html, text = messages["pc0@example.com"]
    assert "7.50 EUR" in html and "9.90" not in html
    assert "Green tea (new harvest)" in html
    assert 'src="https://shop.example/t1-new.jpg"' in html and "t1-old.jpg" not in html
    assert "Black tea" not in html
    assert "7.50 EUR" in text and "9.90" not in text and "Black tea" not in text
    # The rest of the text part is as compiled, its footer's links included.
    assert re.search(r"\[Unsubscribe\]\(<https?://[^>]+/u/[^>]+>\)", text)
    assert re.search(r"\[View in your browser\]\(<https?://[^>]+/v/[^>]+>\)", text)
    assert "Email preferences" not in text and "{%" not in text


def test_it_never_lets_current_product_data_become_template_code(tenant):
    product("EVIL-1", "Plain", "5.00")
    campaign = make_campaign(
        static_segment(make_customers(1, prefix="ev")), design=cards({"source": "skus", "skus": ["EVIL-1"]})
    )
    Product.objects.filter(sku="EVIL-1").update(name="{{ customer.email }}{% now 'Y' %}")

    html, text = send(campaign)["ev0@example.com"]

    assert "{{ customer.email }}{% now &#x27;Y&#x27; %}" in html or "{{ customer.email }}" in html
    assert "ev0@example.com" not in html.replace("mailto:", "")


def test_it_shows_each_recipient_their_own_latest_purchases(tenant):
    teas("A", "B", "C", "D", "E", sold_out=("C",))
    ann, bob, cy, dee = (
        Customer.objects.create(email=f"{name}@example.com", first_name=name, email_marketing=True)
        for name in ("ann", "bob", "cy", "dee")
    )
    bought(ann, "A", days_ago=10)
    bought(ann, "B", days_ago=1)
    bought(bob, "D", days_ago=2, quantity=5, status="cancelled")  # cancelled: not bought
    bought(bob, "C", days_ago=3)  # out of stock: not shown
    bought(dee, "E", days_ago=5, quantity=3)
    campaign = make_campaign(
        static_segment([ann, bob, cy, dee]), design=cards({"source": "last_bought", "limit": 2})
    )

    messages = send(campaign)

    def shown(address):
        html, text = messages[address]
        names = [n for n in TEAS.values() if n in html]
        assert [n for n in names if n in text] == names  # the text part shows the same products
        return sorted(names, key=html.index)

    assert shown("ann@example.com") == ["Bancha", "Assam"]  # most recent first
    assert shown("bob@example.com") == ["Earl Grey", "Assam"]  # nothing of his own: best sellers
    assert shown("cy@example.com") == ["Earl Grey", "Assam"]
    assert shown("dee@example.com") == ["Earl Grey", "Assam"]  # her own, topped up
    html, _ = messages["ann@example.com"]
    assert 'href="https://shop.example/B"' in html or "/t/c/" in html
    assert "4.00 EUR" in html or "4 EUR" in html


def test_it_reads_a_whole_batchs_purchases_in_one_query(tenant):
    for sku in ("A", "B", "C"):
        product(sku, sku * 3, "2.00")
    customers = make_customers(30, prefix="qb")
    for index, customer in enumerate(customers):
        bought(customer, "ABC"[index % 3], days_ago=1)
    campaign = make_campaign(static_segment(customers), design=cards({"source": "last_bought", "limit": 1}))
    lifecycle.campaign_send_now(campaign=campaign)
    composer = sender.composer_for(campaign=campaign)
    recipients = list(CampaignRecipient.objects.filter(campaign=campaign).select_related("customer"))

    with CaptureQueriesContext(connection) as queries:
        composer.prepare(recipients)
        for r in recipients:
            composer.compose(
                recipient_id=r.pk, email=r.email, customer_id=r.customer_id, customer={"first_name": "x"}
            )

    # The batch's purchases and their products, the best sellers for topping up (once per composer),
    # the cards' links (added, read): a handful for 30 recipients, not one per recipient.
    assert len(queries.captured_queries) <= 7, [q["sql"][:120] for q in queries.captured_queries]


def test_it_tracks_clicks_on_a_recipients_own_product_cards(tenant):
    product("B", "Bancha", "4.00")
    ann = Customer.objects.create(email="ann@example.com", email_marketing=True)
    bought(ann, "B", days_ago=1)
    campaign = make_campaign(
        static_segment([ann]), design=cards({"source": "last_bought", "limit": 1}), track_clicks=True
    )

    html, text = send(campaign)["ann@example.com"]

    recipient = CampaignRecipient.objects.get(campaign=campaign)
    page = browser_for(tenant).get(f"/v/{make_token('v', recipient.pk)}").content.decode()
    assert "Bancha" in page and "4 EUR" in page  # the web version shows her cards too
    link = CampaignLink.objects.get(campaign=campaign, url="https://shop.example/B")
    clicks = set(re.findall(r'href="([^"]*/t/c/[^"]+)"', html))
    assert len(clicks) == 1 and "https://shop.example/B" not in html
    [click] = clicks
    response = browser_for(tenant).get(urlsplit(click).path)
    assert response.status_code == 302 and response["Location"] == "https://shop.example/B"
    assert read_token("c", urlsplit(click).path.rsplit("/", 1)[1])[1] == link.pk


def test_it_previews_the_chosen_customers_own_purchases(api, tenant):
    product("A", "Assam", "4.00")
    product("E", "Earl Grey", "5.00")
    ann = Customer.objects.create(email="ann@example.com", first_name="Ann")
    bought(ann, "A", days_ago=3)
    template = email_templates.template_create(
        name="Picks", subject="Picks", design=cards({"source": "last_bought", "limit": 1})
    )
    Product.objects.filter(sku="A").update(price=Decimal("3.50"))

    mine = api.post(f"/api/templates/{template.pk}/preview", {"customer": ann.pk}, format="json").json()
    sample = api.post(f"/api/templates/{template.pk}/preview", {}, format="json").json()

    assert "Assam" in mine["html"] and "3.50 EUR" in mine["html"] and "Assam" in mine["text"]
    assert "Assam" in sample["html"]  # nobody's purchases: the best sellers (Assam sold once)
    assert "Earl Grey" not in mine["html"]


def test_it_generates_the_same_text_part_from_the_compiled_html_as_the_compiler(tenant):
    product("TEA-1", "Green tea", "9.90")
    design = {
        **RECIPE,
        "blocks": [*RECIPE["blocks"], {"type": "products", "data": {"source": "last_bought", "limit": 2}}],
    }
    compiled = design_compile(design, brand=BRAND)
    assert design_text_again(compiled["html"]) == compiled["text"]


# --- stock decided at send time, both ways; no holes in the grid ------------------------------------

# MJML's own structure (not our markers): each section's columns sit between these two comments.
SECTION_COLUMNS_RE = re.compile(
    r'role="presentation"><tr><!\[endif\]-->(.*?)<!--\[if mso \| IE\]></tr></table><!\[endif\]-->', re.DOTALL
)


def grid(html):
    """The product rows of an HTML as MJML laid them out: per row, each column's card name ("" for an
    empty column)."""
    rows = []
    for section in SECTION_COLUMNS_RE.findall(html):
        columns = section.split('<div class="mj-outlook-group-fix mj-column-per-')[1:]
        if any(" product-card" in column.split(">", 1)[0] for column in columns):
            rows.append([(re.findall(r"<strong>(.*?)</strong>", column) or [""])[0] for column in columns])
    return rows


def test_it_shows_a_card_whose_product_was_sold_out_when_saved_once_it_is_back_in_stock(tenant):
    product("TEA-1", "Green tea", "9.90")
    product("TEA-2", "Black tea", "7.00", in_stock=False)
    campaign = make_campaign(
        static_segment(make_customers(1, prefix="bk")),
        design=cards({"source": "skus", "skus": ["TEA-2", "TEA-1"]}),
    )
    Product.objects.filter(sku="TEA-2").update(in_stock=True)

    html, text = send(campaign)["bk0@example.com"]

    assert grid(html) == [["Black tea", "Green tea"]]
    assert "7 EUR" in html and "Black tea" in text and text.index("Black tea") < text.index("Green tea")


def test_it_moves_the_remaining_cards_up_when_one_is_sold_out_at_send_time(tenant):
    teas("A", "B", "C", "D", "E")
    block = {"source": "skus", "skus": ["A", "B", "C", "D", "E"], "per_row": 2}
    campaign = make_campaign(static_segment(make_customers(1, prefix="rf")), design=cards(block))
    assert grid(campaign.html_body) == [["Assam", "Bancha"], ["Chai", "Darjeeling"], ["Earl Grey", ""]]
    Product.objects.filter(sku__in=["B", "D"]).update(in_stock=False)
    Product.objects.filter(sku="E").delete()

    html, text = send(campaign)["rf0@example.com"]

    # Laid out as a design of the products still there would be: no empty place but the last row's.
    assert grid(html) == [["Assam", "Chai"]]
    fresh = design_compile(cards({**block, "skus": ["A", "C"]}))
    assert grid(html) == grid(fresh["html"])
    names = [n for n in TEAS.values() if n in text]
    assert names == ["Assam", "Chai"] and text.index("Assam") < text.index("Chai")
    assert text.count("Buy now") == 2


def test_it_keeps_a_blocks_limit_when_filling_places_from_the_next_products(tenant):
    teas("A", "B", "C", sold_out=("C",))
    block = {"source": "skus", "skus": ["A", "B", "C"], "per_row": 3, "limit": 2}
    campaign = make_campaign(static_segment(make_customers(1, prefix="lm")), design=cards(block))
    Product.objects.filter(sku="A").update(in_stock=False)
    Product.objects.filter(sku="C").update(in_stock=True)

    html, _ = send(campaign)["lm0@example.com"]

    assert grid(html) == [["Bancha", "Chai", ""]]


def test_it_drops_the_whole_block_when_none_of_its_products_is_in_stock(tenant):
    teas("A", "B")
    campaign = make_campaign(
        static_segment(make_customers(1, prefix="no")), design=cards({"source": "skus", "skus": ["A", "B"]})
    )
    Product.objects.update(in_stock=False)

    html, text = send(campaign)["no0@example.com"]

    assert grid(html) == [] and "Buy now" not in html and "Buy now" not in text
    assert "Our picks" in html and "Tea Shop" in text


def test_it_shows_no_empty_row_of_last_bought_cards_to_someone_with_fewer_products(tenant):
    teas("A")
    ann = Customer.objects.create(email="ann@example.com", email_marketing=True)
    bought(ann, "A", days_ago=1)
    campaign = make_campaign(
        static_segment([ann]), design=cards({"source": "last_bought", "limit": 4, "per_row": 2})
    )

    html, text = send(campaign)["ann@example.com"]

    assert grid(html) == [["Assam", ""]]
    assert text.count("Assam") == 1 and "{%" not in text


def test_it_reads_a_batchs_purchases_in_one_query_whatever_its_ab_variants(tenant):
    for sku in ("A", "B", "C"):
        product(sku, sku * 3, "2.00")
    customers = make_customers(30, prefix="ab")
    for index, customer in enumerate(customers):
        bought(customer, "ABC"[index % 3], days_ago=1)
    campaign = make_campaign(
        static_segment(customers),
        design=cards({"source": "last_bought", "limit": 1}),
        variants=[
            {"key": "A", "subject": "One"},
            {"key": "B", "subject": "Two"},
            {"key": "C", "subject": "Three"},
        ],
        ab_test={"test_percent": 90, "metric": "open_rate", "wait_seconds": 3600, "min_confidence": 0.95},
    )
    lifecycle.campaign_send_now(campaign=campaign)
    composer = sender.composer_for(campaign=campaign)
    claims = [
        sender.Claim(r.pk, r.customer_id, r.email, 0, r.variant)
        for r in CampaignRecipient.objects.filter(campaign=campaign)
    ]
    assert {claim.variant for claim in claims} >= {"A", "B", "C"}
    composer.prepare(claims[:1])  # the best sellers: once per run, not per batch

    with CaptureQueriesContext(connection) as queries:
        composer.prepare(claims)
        for claim in claims:
            composer.for_claim(claim).compose(
                recipient_id=claim.id, email=claim.email, customer_id=claim.customer_id, customer={}
            )

    reads = [q["sql"] for q in queries.captured_queries if "WITH bought AS" in q["sql"]]
    assert len(reads) == 1, [q["sql"][:120] for q in queries.captured_queries]
    # then their products, and the links of products not linked yet (added, read): 4 for the batch
    assert len(queries.captured_queries) == 4, [q["sql"][:120] for q in queries.captured_queries]


def test_it_still_refreshes_cards_compiled_before_their_places_were_marked(tenant):
    teas("A", "B", sold_out=("B",))
    legacy = (
        '<div class="product-card"><!--crm-card:A--><strong>Old name</strong><br>1 EUR</div><!--/crm-card--></div>'
        '<div class="product-card"><!--crm-card:B--><strong>Bancha</strong><br>4 EUR</div><!--/crm-card--></div>'
    )

    html, changed = cards_refresh(legacy)

    assert changed and "Assam" in html and "4 EUR" in html and "Old name" not in html
    assert "Bancha" not in html
