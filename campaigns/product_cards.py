"""Product cards at send time: current product data, and each recipient's own latest purchases.

A design is compiled once, when it is saved (campaigns/design.py); a campaign may go out days later.
So the sender looks at the product cards again, once per composer (a batch task's run), never per
recipient:

- a card of a fixed product (by SKU, or a best seller) is marked with its SKU in the compiled HTML:
  one query for all marked SKUs, then each card shows the product's current name, price, image and
  link, or nothing when the product is gone or out of stock. The compiler writes every known product
  of a block, in stock or not when saved, so stock is decided here, both ways. The cards shown fill
  the block's places in order (at most its limit) and rows left empty go, so a removed card leaves no
  hole in the grid. The text part, generated from the HTML at save time, is generated again when a
  card changed.
- a "last bought" block is template code over `products.p<block>.<slot>`, filled per recipient from
  one set-based query per batch (`prepare`), for all of an A/B test's variants together (they share
  one `Purchases`): the recipient's latest distinct in-stock purchases (orders that count), most
  recent first, topped up with the shop's best sellers for someone who has bought little or nothing.
  Product views are not tracked anywhere, so purchases are the history.

Product data never becomes template code: values are HTML-escaped, and an opening `{{`, `{%` or
`{#` in them is written as `{% templatetag %}`, as the compiler does.
"""

import html
import math
import re
from urllib.parse import unquote

from django.db import connection

from customers.models import NON_COUNTING_ORDER_STATUSES, Order, OrderItem, Product

from .design import (
    CARD_CLOSE,
    CARD_OPEN,
    CARDS_CLOSE,
    CARDS_OPEN,
    OPENING_RE,
    ROW_CLOSE,
    ROW_OPEN,
    design_text_again,
    product_price,
    products_for,
)
from .models import CampaignLink

CARD_RE = re.compile(r"<!--crm-card:([^>]*?)-->(.*?)" + re.escape(CARD_CLOSE), re.DOTALL)
# A block of fixed cards (its limit, its rows), or a card outside one (HTML compiled before blocks
# were marked: its card refreshed in place).
BLOCK_OR_CARD_RE = re.compile(
    r"<!--crm-cards:(?P<limit>\d+)-->(?P<rows>.*?)"
    + re.escape(CARDS_CLOSE)
    + r"|<!--crm-card:(?P<sku>[^>]*?)-->(?P<inner>.*?)"
    + re.escape(CARD_CLOSE),
    re.DOTALL,
)
ROW_RE = re.compile(re.escape(ROW_OPEN) + r"(.*?)" + re.escape(ROW_CLOSE), re.DOTALL)
EMPTY_PLACE = CARD_OPEN.format("") + CARD_CLOSE
SLOT_RE = re.compile(r"\bproducts\.p(\d+)\.(\d+)\b")
SRC_RE = re.compile(r'(<img\b[^>]*?\bsrc=")[^"]*(")')
IMG_RE = re.compile(r"<img\b[^>]*>")
HREF_RE = re.compile(r'(\bhref=")[^"]*(")')
HREF_URL_RE = re.compile(r'\bhref="([^"]*)"')
ALT_RE = re.compile(r'(\balt=")[^"]*(")')
NAME_PRICE_RE = re.compile(r"(<strong>).*?(</strong><br\s*/?>).*?(</div>)", re.DOTALL)


def _safe(text):
    """Escaped for HTML, with any opening of template code made literal."""
    return OPENING_RE.sub("{% templatetag openbrace %}", html.escape(text, quote=True))


def card(product):
    """What a card shows of a product (the template's `products.p<n>.<slot>`)."""
    return {
        "sku": product.sku,
        "name": product.name,
        "price": product_price(product),
        "url": product.url,
        "image_url": product.image_url,
    }


def cards_refresh(source):
    """(source, changed): the compiled HTML with the fixed cards showing their products as they are
    now, in one query: a block's cards of products in stock, in order and at most its limit, fill its
    places from the first; rows left empty go."""
    marked = CARD_RE.findall(source or "")
    if not marked:
        return source, False
    skus = {unquote(sku) for sku, _ in marked if sku}
    products = {p.sku: p for p in Product.objects.filter(sku__in=skus, in_stock=True)} if skus else {}

    def refreshed(sku, inner):
        """The card as the product is now, None when it is gone or out of stock (or a place)."""
        product = products.get(unquote(sku)) if sku else None
        if product is None:
            return None
        if product.image_url:
            inner = SRC_RE.sub(lambda m: m.group(1) + _safe(product.image_url) + m.group(2), inner)
        else:
            inner = IMG_RE.sub("", inner)
        inner = HREF_RE.sub(lambda m: m.group(1) + _safe(product.url) + m.group(2), inner)
        inner = ALT_RE.sub(lambda m: m.group(1) + _safe(product.name) + m.group(2), inner)
        inner = NAME_PRICE_RE.sub(
            lambda m: (
                m.group(1) + _safe(product.name) + m.group(2) + _safe(product_price(product)) + m.group(3)
            ),
            inner,
            count=1,
        )
        return CARD_OPEN.format(sku) + inner + CARD_CLOSE

    def block(match):
        rows = ROW_RE.findall(match.group("rows"))
        places = [CARD_RE.findall(row) for row in rows]
        shown = [card for row in places for card in (refreshed(*place) for place in row) if card]
        shown = shown[: int(match.group("limit"))]
        per_row = len(places[0]) if places else 0
        # Cards only move towards the start, so each keeps a card's place (never the last row's
        # padding), and the rows kept are the first ones: the grid of the cards shown, as compiled.
        kept = []
        for index in range(math.ceil(len(shown) / per_row) if per_row else 0):
            cards = iter(shown[index * per_row : (index + 1) * per_row])
            row = CARD_RE.sub(lambda _, cards=cards: next(cards, EMPTY_PLACE), rows[index])
            kept.append(ROW_OPEN + row + ROW_CLOSE)
        return CARDS_OPEN.format(match.group("limit")) + "".join(kept) + CARDS_CLOSE

    def refresh(match):
        if match.group("rows") is not None:
            return block(match)
        return refreshed(match.group("sku"), match.group("inner")) or ""

    result = BLOCK_OR_CARD_RE.sub(refresh, source)
    return result, result != source


def cards_refresh_text(html_source, text_source):
    """(html, text) with the fixed cards refreshed (cards_refresh), the text part generated again
    when a card changed."""
    refreshed, changed = cards_refresh(html_source)
    return refreshed, design_text_again(refreshed) if changed else text_source


def card_urls(source):
    """The product URLs of the fixed cards of a compiled HTML (as written in it)."""
    return {
        html.unescape(url) for _, inner in CARD_RE.findall(source or "") for url in HREF_URL_RE.findall(inner)
    }


def last_bought_slots(source):
    """{block key: slots} of the "last bought" blocks a compiled HTML holds ({} for none)."""
    slots = {}
    for block, slot in SLOT_RE.findall(source or ""):
        key = f"p{block}"
        slots[key] = max(slots.get(key, 0), int(slot) + 1)
    return slots


def last_bought(*, customer_ids, limit):
    """{customer id: [Product]}: each customer's latest `limit` distinct in-stock products of orders
    that count, most recent first. One query for the whole batch: the order history is read through
    the (customer, placed_at) index, each customer's distinct SKUs ranked by their latest order."""
    if not customer_ids or limit <= 0:
        return {}
    orders, items, products = Order._meta.db_table, OrderItem._meta.db_table, Product._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH bought AS (
                SELECT o.customer_id, i.sku, max(o.placed_at) AS at
                FROM {orders} o JOIN {items} i ON i.order_id = o.id
                WHERE o.customer_id = ANY(%(customers)s) AND NOT (o.status = ANY(%(not_counting)s))
                GROUP BY o.customer_id, i.sku
            ), ranked AS (
                SELECT b.customer_id, p.id,
                       row_number() OVER (PARTITION BY b.customer_id ORDER BY b.at DESC, p.sku) AS n
                FROM bought b JOIN {products} p ON p.sku = b.sku AND p.in_stock
            )
            SELECT customer_id, id FROM ranked WHERE n <= %(limit)s ORDER BY customer_id, n
            """,
            {
                "customers": list(customer_ids),
                "not_counting": list(NON_COUNTING_ORDER_STATUSES),
                "limit": limit,
            },
        )
        rows = cursor.fetchall()
    by_id = Product.objects.in_bulk({product_id for _, product_id in rows})
    chosen = {}
    for customer_id, product_id in rows:
        chosen.setdefault(customer_id, []).append(by_id[product_id])
    return chosen


def links_ensure(*, campaign_id, urls):
    """{url: CampaignLink id} for product URLs a campaign's cards link to (added when missing), so
    their clicks are tracked like the content's own links: two queries, for all of a batch's URLs.
    A product's URL is the shop's own data (its authenticated API): no open redirect."""
    urls = sorted(set(urls))
    if not urls:
        return {}
    CampaignLink.objects.bulk_create(
        [CampaignLink(campaign_id=campaign_id, url=url) for url in urls], ignore_conflicts=True
    )
    return dict(CampaignLink.objects.filter(campaign_id=campaign_id, url__in=urls).values_list("url", "id"))


class Purchases:
    """The "last bought" products of a campaign's recipients, read a batch at a time: shared by the
    composers of an A/B test's variants, so a batch costs one query whatever its variants.

    `campaign_id` (a campaign that tracks clicks): the products' URLs become links of the campaign
    (`link_ids`)."""

    def __init__(self, *, campaign_id=None):
        self.campaign_id = campaign_id
        self.limit = 0
        self.link_ids = {}
        self._fallback = None
        self._chosen = {}

    def need(self, limit):
        """A composer's blocks show up to `limit` products a recipient (said before any `prepare`)."""
        self.limit = max(self.limit, limit)

    def prepare(self, customer_ids):
        """Load the products of a batch's customers (one query; nothing without a "last bought" block)."""
        if not self.limit:
            return
        wanted = [pk for pk in set(customer_ids) if pk and pk not in self._chosen]
        found = last_bought(customer_ids=wanted, limit=self.limit) if wanted else {}
        for pk in wanted:
            self._chosen[pk] = found.get(pk, [])
        if self.campaign_id:
            urls = {p.url for products in found.values() for p in products}
            urls |= {p.url for p in self.fallback()}
            missing = urls - set(self.link_ids)
            if missing:
                self.link_ids.update(links_ensure(campaign_id=self.campaign_id, urls=missing))
        if len(self._chosen) > 20_000:  # a composer lives for one task's run; keep its memory flat
            self._chosen = {pk: self._chosen[pk] for pk in wanted}

    def fallback(self):
        """The shop's best sellers (once per campaign run): what tops up a short purchase history."""
        if self._fallback is None:
            self._fallback = products_for({"source": "bestsellers", "limit": self.limit})
        return self._fallback

    def products(self, customer_id, limit):
        """A customer's own latest products topped up with the best sellers, at most `limit`."""
        if customer_id not in self._chosen:
            self.prepare([customer_id])
        own = self._chosen.get(customer_id, [])
        shown = {p.sku for p in own}
        return (own + [p for p in self.fallback() if p.sku not in shown])[:limit]


class ProductCards:
    """The product cards of one message source, for a composer: the refreshed HTML (and text), and
    per recipient the `products` of its "last bought" blocks.

    `campaign_id` (a campaign that tracks clicks): the cards' product URLs become links of the
    campaign (`link_ids`), so a click on a card is tracked, and attributed, like any other.
    `purchases`: the recipients' purchases, shared with the other composers of the campaign (an A/B
    test's variants); its own when not given."""

    def __init__(self, *, html_source, text_source, campaign_id=None, purchases=None):
        self.campaign_id = campaign_id
        self.link_ids = {}
        # Marked cards come only from the compiler, whose text part is generated from its HTML (a
        # save replaces both): generated again from the refreshed HTML, it shows the same products.
        self.html, self.text = cards_refresh_text(html_source, text_source)
        if self.html != html_source and campaign_id:
            self.link_ids.update(links_ensure(campaign_id=campaign_id, urls=card_urls(self.html)))
        self.slots = last_bought_slots(self.html)
        self.limit = max(self.slots.values(), default=0)
        self.purchases = purchases if purchases is not None else Purchases(campaign_id=campaign_id)
        self.purchases.need(self.limit)

    def prepare(self, customer_ids):
        """Load the "last bought" products of a batch's customers (one query, for every composer
        sharing the purchases; nothing without such a block)."""
        self.purchases.prepare(customer_ids)

    def context(self, customer_id, click_url=None):
        """`products` for one recipient: {block key: [cards]}, {} without "last bought" blocks.
        `click_url(link id)`: the recipient's tracked URL of a link (cards link through it)."""
        if not self.slots:
            return {}
        cards = [card(p) for p in self.purchases.products(customer_id, self.limit)]
        if click_url is not None:
            for entry in cards:
                link_id = self.purchases.link_ids.get(entry["url"])
                if link_id is not None:
                    entry["url"] = click_url(link_id)
        return {key: cards[:slots] for key, slots in self.slots.items()}
