"""The block editor's designs: JSON blocks -> MJML -> responsive HTML -> inlined CSS -> text part.

A design is what the admin's editor (Editor.js with our block tools, static/campaigns/design/) saves:
`{"blocks": [{"id": ..., "type": ..., "data": {...}}, ...], "settings": {...}}` plus Editor.js's own
`time` and `version`. `design_compile` is the one entry point: it validates every block strictly
(an unknown block type or attribute, a value of the wrong kind or out of bounds is a ValidationError
naming the block and the attribute: a 400, never a 500), then builds the MJML, renders it with MRML
(Rust, no Node at run time), inlines the CSS and derives the text part. It runs once per save, never
per recipient: the result is stored as the template's (or campaign's) html_body and text_body, which
the sandboxed renderer (campaigns/rendering.py) personalises per recipient as any raw HTML template.

Sizes are bounded before anything is built, like the renderer's forecasts: the design's JSON is
refused over MAX_DESIGN_BYTES before it is parsed, at most MAX_BLOCKS blocks, every text has a length
limit, every list a count limit and every number a range, so the MJML is never much larger than the
JSON and a design built to eat memory or time is refused with what to change.

Template code: block texts and links may hold variables (`{{ customer.first_name|default:"there" }}`,
the menu's entries) and nothing else of the template language. Each variable is swapped for an opaque
placeholder while MJML, the sanitiser and the inliner run (none of them knows `{{ }}`), and put back
at the end. Any other `{{`, `{%` or `{#` in the output (a product name, a literal brace in a text)
is written as `{% templatetag %}`, so data can never become template code.
"""

import html
import json
import re
import secrets
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import css_inline
import html2text
import mrml
import nh3
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from customers.models import NON_COUNTING_ORDER_STATUSES, OrderItem, Product
from tenancy.models import BRAND_FONTS

MAX_DESIGN_BYTES = 256 * 1024
MAX_BLOCKS = 60
MAX_PRODUCTS_PER_BLOCK = 12
MAX_PRODUCT_CARDS = 48
BESTSELLER_DAYS = 30

# What a variable may be: a documented name, a dotted path, filters with one quoted or plain argument.
VARIABLE_ROOTS = ("customer", "campaign", "unsubscribe_url", "preferences_url", "web_version_url")
VARIABLE_RE = re.compile(
    r"\{\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)"
    r"(?P<filters>(?:\|[a-z_]+(?::(?:\"[^\"{}|\n]{0,200}\"|'[^'{}|\n]{0,200}'|[0-9]{1,6}))?){0,4})\s*\}\}"
)
TEMPLATE_CODE_RE = re.compile(r"\{[{%#]|[}%#]\}")
# After MJML and the inliner: every `{` that would open template code (none of ours is left: they
# are placeholders at that point).
OPENING_RE = re.compile(r"\{(?=[{%#])")

COLOUR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
SOCIAL_LABELS = {
    "facebook": "Facebook",
    "instagram": "Instagram",
    "x": "X",
    "linkedin": "LinkedIn",
    "youtube": "YouTube",
    "pinterest": "Pinterest",
    "github": "GitHub",
}
SOCIAL_NETWORKS = tuple(SOCIAL_LABELS)
# mrml's social icons come from its own origin (mjml's, on S3); X is "twitter" there.
MJML_NETWORK = {"x": "twitter"}
RICH_TAGS = {"b", "strong", "i", "em", "u", "a", "br", "span"}
SKU_RE = re.compile(r"^[A-Za-z0-9._\-/ ]{1,100}$")
# Where a product block's products come from: SKUs picked in the editor, the shop's best sellers, or
# each recipient's own latest purchases (chosen per recipient when the message is sent:
# campaigns/product_cards.py).
PRODUCT_SOURCES = ("skus", "bestsellers", "last_bought")
LAST_BOUGHT = "last_bought"
# A card of a fixed product (by SKU or a best seller) is marked in the compiled HTML with its SKU, so
# the sender can show the product's current price, image and stock (campaigns/product_cards.py). Every
# place of a block's grid is marked (an empty place with no SKU), each row and the block as a whole
# too, with how many cards the block shows at most: the sender fills the places with the cards
# available then, in order, and leaves out the rows it no longer needs, so no hole shows.
CARD_OPEN = "<!--crm-card:{}-->"
CARD_CLOSE = "<!--/crm-card-->"
CARDS_OPEN = "<!--crm-cards:{}-->"
CARDS_CLOSE = "<!--/crm-cards-->"
ROW_OPEN = "<!--crm-row-->"
ROW_CLOSE = "<!--/crm-row-->"
# A best-seller block compiles this many times its limit of candidates (in stock or not when saved),
# so one sold out at send time gives way to the next.
BESTSELLER_SPARES = 2


class DesignError(ValidationError):
    """`{"design": ["blocks[3] (button).link: why"]}`: the block's place, type and attribute."""

    def __init__(self, where, message):
        super().__init__({"design": [f"{where}: {message}" if where else message]})


# --- values ------------------------------------------------------------------------------------------


class _Vars:
    """The variables of one compile, each swapped for a placeholder no input can guess."""

    def __init__(self):
        self.nonce = secrets.token_hex(5)
        self.values = {}
        self.tags = []

    def protect(self, text, where):
        """`text` with each variable swapped for its placeholder; other template code is refused."""

        def swap(match):
            root = match.group("name").split(".")[0]
            if root not in VARIABLE_ROOTS:
                raise DesignError(
                    where, f"unknown variable '{match.group('name')}' (use the Variables menu's names)."
                )
            key = f"x{self.nonce}v{len(self.values)}x"
            self.values[key] = match.group(0)
            return key

        swapped = VARIABLE_RE.sub(swap, text)
        if TEMPLATE_CODE_RE.search(swapped):
            raise DesignError(
                where,
                "only variables such as {{ customer.first_name }} may be used here, no other template code.",
            )
        return swapped

    def code(self, source):
        """A placeholder for a template tag of our own (never the marketer's or the shop's data)."""
        key = f"x{self.nonce}v{len(self.values)}x"
        self.values[key] = source
        self.tags.append(key)
        return key

    def tags_as_text(self, text):
        for key in self.tags:
            text = text.replace(f"<!--{key}-->", key)
        return text

    def variable(self, name):
        """A placeholder for `{{ name }}`, a value of our own context (the product cards')."""
        key = f"x{self.nonce}v{len(self.values)}x"
        self.values[key] = "{{ " + name + " }}"
        return key

    def tags_in_comments(self, text):
        """Each tag's placeholder inside an HTML comment: text between table rows would be moved out
        of the table by an HTML parser (MRML's inliner's), a comment stays where it is; and the tag
        still works (`<!--{% if a %}-->X<!--{% endif %}-->` renders `<!---->X<!---->` or `<!---->`)."""
        for key in self.tags:
            text = text.replace(key, f"<!--{key}-->")
        return text

    def restore(self, text):
        if not self.values:
            return text
        return re.sub(rf"x{self.nonce}v\d+x", lambda m: self.values.get(m.group(0), ""), text)


def _text(max_length, required=False, variables=True):
    def clean(value, where, ctx):
        if not isinstance(value, str):
            raise DesignError(where, "must be text.")
        value = value.strip()
        if len(value) > max_length:
            raise DesignError(where, f"is too long ({len(value)} characters, at most {max_length}).")
        if required and not value:
            raise DesignError(where, "is required.")
        if not variables and ("{" in value or "}" in value):
            raise DesignError(where, "may not hold variables or braces.")
        return html.escape(ctx.vars.protect(value, where), quote=True)

    return clean


def _rich(max_length, required=False):
    """Inline formatting of Editor.js (bold, italic, underline, links, line breaks), sanitised."""

    def clean(value, where, ctx):
        if not isinstance(value, str):
            raise DesignError(where, "must be text.")
        if len(value) > max_length:
            raise DesignError(where, f"is too long ({len(value)} characters, at most {max_length}).")
        cleaned = nh3.clean(
            ctx.vars.protect(value, where),
            tags=RICH_TAGS,
            attributes={"a": {"href"}},
            url_schemes={"http", "https", "mailto"},
            link_rel=None,
        ).strip()
        if required and not cleaned:
            raise DesignError(where, "is required.")
        return cleaned

    return clean


def _link(required=False):
    def clean(value, where, ctx):
        if not isinstance(value, str):
            raise DesignError(where, "must be a link.")
        value = value.strip()
        if not value:
            if required:
                raise DesignError(where, "is required.")
            return ""
        if len(value) > 2000 or '"' in value.replace("{{", "").split("}}")[-1]:
            raise DesignError(where, "is not a link (at most 2000 characters, no quotes).")
        swapped = ctx.vars.protect(value, where)
        whole_variable = re.fullmatch(rf"x{ctx.vars.nonce}v\d+x", swapped)
        if not whole_variable and not re.match(r"^(https?://[^\s<>\"']+|mailto:[^\s<>\"']+)$", swapped):
            raise DesignError(where, "must start with https://, http:// or mailto:, or be a variable.")
        if any('"' in ctx.vars.values[key] for key in re.findall(rf"x{ctx.vars.nonce}v\d+x", swapped)):
            raise DesignError(where, "a variable in a link may not have quoted filter arguments.")
        return html.escape(swapped, quote=True)

    return clean


def _image_url(required=False):
    def clean(value, where, ctx):
        if not isinstance(value, str):
            raise DesignError(where, "must be an image URL.")
        value = value.strip()
        if not value:
            if required:
                raise DesignError(where, "is required.")
            return ""
        if len(value) > 2000 or not re.match(r"^https?://[^\s<>\"'{}]+$", value):
            raise DesignError(where, "must be an http(s) URL of an image (at most 2000 characters).")
        return html.escape(value, quote=True)

    return clean


def _colour(value, where, ctx):
    if not isinstance(value, str) or not COLOUR_RE.match(value):
        raise DesignError(where, "must be a colour written #rgb or #rrggbb.")
    return value.lower()


def _choice(*choices):
    def clean(value, where, ctx):
        if value not in choices:
            raise DesignError(where, f"must be one of {', '.join(map(str, choices))}.")
        return value

    return clean


def _int(low, high):
    def clean(value, where, ctx):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DesignError(where, f"must be a whole number from {low} to {high}.")
        return value

    return clean


def _bool(value, where, ctx):
    if not isinstance(value, bool):
        raise DesignError(where, "must be true or false.")
    return value


def _list(item, low, high):
    def clean(value, where, ctx):
        if not isinstance(value, list):
            raise DesignError(where, "must be a list.")
        if not low <= len(value) <= high:
            raise DesignError(where, f"must have {low} to {high} items (it has {len(value)}).")
        return [item(entry, f"{where}[{index}]", ctx) for index, entry in enumerate(value)]

    return clean


def _object(spec, required=()):
    def clean(value, where, ctx):
        return _validated(value, spec, required, where, ctx)

    return clean


def _validated(data, spec, required, where, ctx):
    if not isinstance(data, dict):
        raise DesignError(where, "must be an object.")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise DesignError(where, f"unknown attribute '{unknown[0]}' (allowed: {', '.join(sorted(spec))}).")
    for name in required:
        if data.get(name) in (None, "", []):
            raise DesignError(f"{where}.{name}", "is required.")
    return {
        name: spec[name](value, f"{where}.{name}", ctx) for name, value in data.items() if value is not None
    }


# --- blocks ------------------------------------------------------------------------------------------

_BOX = {"align": _choice("left", "center", "right"), "padding": _int(0, 80), "background": _colour}

BLOCKS = {
    "header": (
        {
            **_BOX,
            "logo_url": _image_url(),
            "alt": _text(200, variables=False),
            "link": _link(),
            "width": _int(40, 600),
        },
        (),
    ),
    "heading": ({**_BOX, "text": _rich(500), "level": _int(1, 3), "color": _colour}, ("text",)),
    "text": ({**_BOX, "text": _rich(10_000), "color": _colour, "font_size": _int(10, 32)}, ("text",)),
    "image": (
        {
            **_BOX,
            "url": _image_url(),
            "alt": _text(300, variables=False),
            "link": _link(),
            "width": _int(40, 600),
        },
        ("url",),
    ),
    "button": (
        {
            **_BOX,
            "label": _text(200),
            "link": _link(),
            "color": _colour,
            "text_color": _colour,
            "radius": _int(0, 40),
        },
        ("label", "link"),
    ),
    "columns": (
        {
            **_BOX,
            "color": _colour,
            "columns": _list(
                _object(
                    {
                        "text": _rich(5_000),
                        "image_url": _image_url(),
                        "link": _link(),
                        "label": _text(200),
                    }
                ),
                2,
                3,
            ),
        },
        ("columns",),
    ),
    "products": (
        {
            **_BOX,
            "source": _choice(*PRODUCT_SOURCES),
            "skus": _list(_text(100, variables=False), 0, MAX_PRODUCTS_PER_BLOCK),
            "limit": _int(1, MAX_PRODUCTS_PER_BLOCK),
            "per_row": _int(1, 3),
            "button_label": _text(100),
        },
        ("source",),
    ),
    "divider": ({**_BOX, "color": _colour, "thickness": _int(1, 10)}, ()),
    "spacer": ({"background": _colour, "height": _int(4, 200)}, ()),
    "social": (
        {
            **_BOX,
            "links": _list(
                _object({"network": _choice(*SOCIAL_NETWORKS), "url": _link()}, ("network", "url")), 1, 8
            ),
        },
        ("links",),
    ),
    "footer": ({**_BOX, "text": _rich(2_000), "color": _colour, "show_address": _bool}, ()),
}
SETTINGS = {
    "background": _colour,
    "content_background": _colour,
    "font": _choice(*BRAND_FONTS),
    "preheader": _text(200),
}
TOP_LEVEL = {"blocks", "settings", "time", "version"}


class _Context:
    def __init__(self, brand):
        self.vars = _Vars()
        self.brand = brand
        self.warnings = []
        self.product_cards = 0


def brand_defaults(tenant=None):
    """The tenant's brand (its settings page) as the compiler uses it."""
    tenant = tenant or getattr(connection, "tenant", None)
    font = getattr(tenant, "brand_font", "Arial") or "Arial"
    return {
        "logo_url": getattr(tenant, "brand_logo_url", "") or "",
        "primary": getattr(tenant, "brand_primary_colour", "") or "#2563eb",
        "text": getattr(tenant, "brand_text_colour", "") or "#1f2937",
        "background": getattr(tenant, "brand_background_colour", "") or "#f4f4f5",
        "font": font,
        "font_stack": BRAND_FONTS.get(font, BRAND_FONTS["Arial"]),
        "postal_address": getattr(tenant, "postal_address", "") or "",
        "name": getattr(tenant, "name", "") or "",
    }


def design_parse(raw):
    """A design from the editor's JSON text; None for empty. Size is checked before parsing."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, dict):
        raw = json.dumps(raw)
    if not isinstance(raw, str):
        raise DesignError("", "The design must be a JSON object.")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_DESIGN_BYTES:
        raise DesignError("", f"The design is too large (at most {MAX_DESIGN_BYTES // 1024} KB of JSON).")
    try:
        design = json.loads(raw)
    except (ValueError, RecursionError):
        raise DesignError("", "The design is not valid JSON.") from None
    if not isinstance(design, dict):
        raise DesignError("", "The design must be a JSON object.")
    return design


def design_validate(design, *, brand=None):
    """The design's blocks and settings, cleaned: [(type, data)], settings. Raises DesignError."""
    ctx = _Context(brand or brand_defaults())
    return _clean(design, ctx), ctx


def _clean(design, ctx):
    if not isinstance(design, dict):
        raise DesignError("", "The design must be a JSON object.")
    try:
        dumped = json.dumps(design)
    except (ValueError, TypeError, RecursionError):
        raise DesignError("", "The design is not valid JSON.") from None
    if len(dumped) > MAX_DESIGN_BYTES:
        raise DesignError("", f"The design is too large (at most {MAX_DESIGN_BYTES // 1024} KB of JSON).")
    if "\\u0000" in dumped:  # PostgreSQL's jsonb cannot store it, and no design needs it
        raise DesignError("", "The design holds a NUL character.")
    unknown = sorted(set(design) - TOP_LEVEL)
    if unknown:
        raise DesignError("", f"unknown design attribute '{unknown[0]}'.")
    blocks = design.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        raise DesignError("blocks", "a design needs at least one block.")
    if len(blocks) > MAX_BLOCKS:
        raise DesignError("blocks", f"at most {MAX_BLOCKS} blocks (this design has {len(blocks)}).")
    settings = _validated(design.get("settings") or {}, SETTINGS, (), "settings", ctx)
    cleaned = []
    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        if not isinstance(block, dict):
            raise DesignError(where, "must be an object.")
        extra = sorted(set(block) - {"id", "type", "data"})
        if extra:
            raise DesignError(where, f"unknown attribute '{extra[0]}'.")
        kind = block.get("type")
        if kind not in BLOCKS:
            raise DesignError(
                where, f"unknown block type '{str(kind)[:40]}' (allowed: {', '.join(sorted(BLOCKS))})."
            )
        spec, required = BLOCKS[kind]
        cleaned.append((kind, _validated(block.get("data") or {}, spec, required, f"{where} ({kind})", ctx)))
    return cleaned, settings


# --- MJML ----------------------------------------------------------------------------------------------


def _attrs(**values):
    return "".join(f' {name.replace("_", "-")}="{value}"' for name, value in values.items() if value != "")


def _section(data, body, *, default_padding=10):
    padding = data.get("padding", default_padding)
    return (
        f"<mj-section{_attrs(background_color=data.get('background', ''), padding=f'{padding}px 0')}>"
        f"{body}</mj-section>"
    )


def _column(inner):
    return f"<mj-column>{inner}</mj-column>"


def _mj_text(content, data, ctx, **extra):
    attrs = _attrs(align=data.get("align", "left"), color=data.get("color", ""), padding="4px 24px", **extra)
    return f"<mj-text{attrs}>{content}</mj-text>"


def _block_header(data, ctx):
    logo = data.get("logo_url") or html.escape(ctx.brand["logo_url"], quote=True)
    if not logo:
        name = html.escape(ctx.brand["name"] or "")
        return _section(data, _column(_mj_text(f"<strong>{name}</strong>", data, ctx, font_size="20px")))
    image = _attrs(
        src=logo,
        alt=data.get("alt", html.escape(ctx.brand["name"], quote=True)),
        href=data.get("link", ""),
        width=f"{data.get('width', 160)}px",
        align=data.get("align", "center"),
        padding="8px 24px",
    )
    return _section(data, _column(f"<mj-image{image} />"))


def _block_heading(data, ctx):
    level = data.get("level", 1)
    size = {1: "28px", 2: "22px", 3: "18px"}[level]
    return _section(
        data,
        _column(
            _mj_text(
                f'<h{level} style="margin:0;font-size:{size};line-height:1.3">{data["text"]}</h{level}>',
                data,
                ctx,
            )
        ),
    )


def _block_text(data, ctx):
    return _section(
        data, _column(_mj_text(data["text"], data, ctx, font_size=f"{data.get('font_size', 15)}px"))
    )


def _block_image(data, ctx):
    image = _attrs(
        src=data["url"],
        alt=data.get("alt", ""),
        href=data.get("link", ""),
        width=f"{data['width']}px" if "width" in data else "",
        align=data.get("align", "center"),
        padding="0 24px",
    )
    return _section(data, _column(f"<mj-image{image} />"))


def _button(label, link, data, ctx):
    attrs = _attrs(
        href=link,
        align=data.get("align", "center"),
        background_color=data.get("color", ctx.brand["primary"]),
        color=data.get("text_color", "#ffffff"),
        border_radius=f"{data.get('radius', 4)}px",
        font_size="15px",
        padding="8px 24px",
    )
    return f"<mj-button{attrs}>{label}</mj-button>"


def _block_button(data, ctx):
    return _section(data, _column(_button(data["label"], data["link"], data, ctx)))


def _block_columns(data, ctx):
    columns = []
    for column in data["columns"]:
        inner = ""
        if column.get("image_url"):
            inner += f"<mj-image{_attrs(src=column['image_url'], href=column.get('link', ''), padding='4px 12px')} />"
        if column.get("text"):
            inner += _mj_text(column["text"], data, ctx)
        if column.get("label") and column.get("link"):
            inner += _button(column["label"], column["link"], data, ctx)
        columns.append(_column(inner))
    return _section(data, "".join(columns))


def products_for(data, *, in_stock=True):
    """The in-stock products a card block shows, in order: by SKU, or the best sellers of the last
    BESTSELLER_DAYS days (quantity sold in orders that count).

    `in_stock=False`: the products the block may show, whatever their stock now (the compiler's
    cards, whose stock the sender decides at send time): every known SKU, or BESTSELLER_SPARES
    times the limit of best sellers."""
    limit = data.get("limit", MAX_PRODUCTS_PER_BLOCK)
    stock = {"in_stock": True} if in_stock else {}
    if data.get("source") == "bestsellers":
        since = timezone.now() - timedelta(days=BESTSELLER_DAYS)
        # Once per save, not per recipient: a grouped sum over the window's order items, then the
        # in-stock products among the top sellers (a few more than needed, as some are out of stock).
        top = list(
            OrderItem.objects.filter(order__placed_at__gte=since)
            .exclude(order__status__in=NON_COUNTING_ORDER_STATUSES)
            .values("sku")
            .annotate(sold=Sum("quantity"))
            .order_by("-sold", "sku")
            .values_list("sku", flat=True)[: limit * 4]
        )
        products = {p.sku: p for p in Product.objects.filter(sku__in=top, **stock)}
        return [products[sku] for sku in top if sku in products][
            : limit if in_stock else limit * BESTSELLER_SPARES
        ]
    skus = [html.unescape(sku) for sku in data.get("skus", [])]
    products = {p.sku: p for p in Product.objects.filter(sku__in=skus, **stock)}
    chosen = [products[sku] for sku in skus if sku in products]
    return chosen[:limit] if in_stock else chosen


def product_price(product):
    amount = (
        product.price.quantize(Decimal("0.01")) if product.price % 1 else product.price.quantize(Decimal("1"))
    )
    return f"{amount} {product.currency}"


def _card(data, ctx, *, image, url, name, price, label):
    """One product card's MJML (image, name and price, button); values are HTML-escaped or placeholders."""
    inner = ""
    if image:
        inner += f"<mj-image{_attrs(src=image, href=url, alt=name, padding='4px 12px')} />"
    inner += _mj_text(
        f"<strong>{name}</strong><br>{price}", {**data, "align": data.get("align", "center")}, ctx
    )
    return inner + _button(label, url, data, ctx)


def _block_last_bought(data, ctx, index):
    """Cards of each recipient's own latest purchases: template code over `products.p<index>`, which
    the sender fills per recipient (campaigns/product_cards.py); a slot without a product is empty."""
    limit = data.get("limit", 4)
    per_row = data.get("per_row", 2)
    code = ctx.vars.code
    key = f"products.p{index}"
    label = data.get("button_label", "Buy now")
    rows = []
    for start in range(0, limit, per_row):
        columns = []
        for slot in range(start, min(start + per_row, limit)):
            card = f"{key}.{slot}"
            value = ctx.vars.variable
            image = (
                f"<mj-raw>{code('{% if ' + card + '.image_url %}')}</mj-raw>"
                f"<mj-image{_attrs(src=value(card + '.image_url'), href=value(card + '.url'), alt=value(card + '.name'), padding='4px 12px')} />"
                f"<mj-raw>{code('{% endif %}')}</mj-raw>"
            )
            rest = _card(
                data,
                ctx,
                image="",
                url=value(card + ".url"),
                name=value(card + ".name"),
                price=value(card + ".price"),
                label=label,
            )
            columns.append(
                f'<mj-column css-class="product-card"><mj-raw>{code("{% if " + card + " %}")}</mj-raw>'
                f"{image}{rest}<mj-raw>{code('{% endif %}')}</mj-raw></mj-column>"
            )
        columns += ["<mj-column></mj-column>"] * (per_row - len(columns))
        # A row shows only when its first place has a product: a recipient with fewer products than
        # places sees no empty rows (the places fill in order).
        rows.append(
            f"<mj-raw>{code('{% if ' + key + '.' + str(start) + ' %}')}</mj-raw>"
            f"{_section(data, ''.join(columns), default_padding=4)}<mj-raw>{code('{% endif %}')}</mj-raw>"
        )
    return "".join(rows)


def _block_products(data, ctx, index=0):
    if data.get("source") == LAST_BOUGHT:
        ctx.product_cards += data.get("limit", 4)
        if ctx.product_cards > MAX_PRODUCT_CARDS:
            raise DesignError("products", f"at most {MAX_PRODUCT_CARDS} product cards in one design.")
        return _block_last_bought(data, ctx, index)
    if data.get("source") == "skus" and not data.get("skus"):
        raise DesignError("products", "pick at least one SKU, or show the best sellers.")
    # Every known product of the block is compiled, in stock or not: the sender shows those in stock
    # at send time (campaigns/product_cards.py), so one sold out now is back when it is back.
    products = products_for(data, in_stock=False)
    limit = data.get("limit", MAX_PRODUCTS_PER_BLOCK)
    wanted = data.get("skus", [])
    if data.get("source") == "skus":
        in_stock = {p.sku for p in products if p.in_stock}
        missing = [html.unescape(s) for s in wanted if html.unescape(s) not in in_stock]
        if missing:
            ctx.warnings.append(f"Products not shown (unknown or out of stock): {', '.join(missing)}.")
    ctx.product_cards += min(len(products), limit)
    if ctx.product_cards > MAX_PRODUCT_CARDS:
        raise DesignError("products", f"at most {MAX_PRODUCT_CARDS} product cards in one design.")
    per_row = data.get("per_row", 2)
    label = data.get("button_label", "Buy now")
    rows = []
    for start in range(0, len(products), per_row):
        columns = []
        for product in products[start : start + per_row]:
            inner = _card(
                data,
                ctx,
                image=html.escape(product.image_url, quote=True),
                url=html.escape(product.url, quote=True),
                name=html.escape(product.name, quote=True),
                price=html.escape(product_price(product)),
                label=label,
            )
            marker = CARD_OPEN.format(quote(product.sku, safe=""))
            columns.append(
                f'<mj-column css-class="product-card"><mj-raw>{marker}</mj-raw>{inner}'
                f"<mj-raw>{CARD_CLOSE}</mj-raw></mj-column>"
            )
        # Empty places keep the cards of the last row as wide as the others; marked like a card's, so
        # the sender can move a card into any place of the grid.
        empty = f'<mj-column css-class="product-card"><mj-raw>{CARD_OPEN.format("")}{CARD_CLOSE}</mj-raw></mj-column>'
        columns += [empty] * (per_row - len(columns))
        section = _section(data, "".join(columns), default_padding=4)
        rows.append(f"<mj-raw>{ROW_OPEN}</mj-raw>{section}<mj-raw>{ROW_CLOSE}</mj-raw>")
    return f"<mj-raw>{CARDS_OPEN.format(limit)}</mj-raw>{''.join(rows)}<mj-raw>{CARDS_CLOSE}</mj-raw>"


def _block_divider(data, ctx):
    attrs = _attrs(
        border_color=data.get("color", "#d4d4d8"),
        border_width=f"{data.get('thickness', 1)}px",
        padding="8px 24px",
    )
    return _section(data, _column(f"<mj-divider{attrs} />"))


def _block_spacer(data, ctx):
    section = _attrs(background_color=data.get("background", ""), padding="0")
    height = data.get("height", 24)
    spacer = f'<mj-spacer height="{height}px" />'
    return f"<mj-section{section}>{_column(spacer)}</mj-section>"


def _block_social(data, ctx):
    elements = "".join(
        f"<mj-social-element{_attrs(name=MJML_NETWORK.get(link['network'], link['network']), href=link['url'], alt=SOCIAL_LABELS[link['network']])}>"
        "</mj-social-element>"
        for link in data["links"]
    )
    attrs = _attrs(align=data.get("align", "center"), icon_size="24px", mode="horizontal", padding="8px 24px")
    return _section(data, _column(f"<mj-social{attrs}>{elements}</mj-social>"))


def _block_footer(data, ctx):
    parts = []
    if data.get("text"):
        parts.append(data["text"])
    if data.get("show_address", True) and ctx.brand["postal_address"]:
        parts.append(html.escape(ctx.brand["postal_address"]).replace("\n", "<br>"))
    # Each link only where the message has it: a campaign's message has an unsubscribe link and a
    # web version; a transactional one (an order confirmation) has neither, only the preference
    # centre, where the customer can turn order emails off. An empty href is never written.
    code = ctx.vars.code
    unsubscribe = ctx.vars.protect("{{ unsubscribe_url }}", "footer")
    preferences = ctx.vars.protect("{{ preferences_url }}", "footer")
    web = ctx.vars.protect("{{ web_version_url }}", "footer")
    parts.append(
        f'{code("{% if unsubscribe_url %}")}<a href="{unsubscribe}">Unsubscribe</a>'
        f'{code("{% elif preferences_url %}")}<a href="{preferences}">Email preferences</a>'
        f'{code("{% endif %}")}{code("{% if web_version_url %}")} · <a href="{web}">View in your browser</a>'
        f"{code('{% endif %}')}"
    )
    content = "<br><br>".join(parts)
    return _section(
        data,
        _column(
            _mj_text(
                content,
                {"align": data.get("align", "center"), "color": data.get("color", "#71717a")},
                ctx,
                font_size="12px",
            )
        ),
    )


RENDERERS = {
    "header": _block_header,
    "heading": _block_heading,
    "text": _block_text,
    "image": _block_image,
    "button": _block_button,
    "columns": _block_columns,
    "products": _block_products,
    "divider": _block_divider,
    "spacer": _block_spacer,
    "social": _block_social,
    "footer": _block_footer,
}


def _mjml(blocks, settings, ctx):
    brand = ctx.brand
    font = BRAND_FONTS.get(settings.get("font", brand["font"]), brand["font_stack"])
    title = settings.get("preheader") or html.escape(brand["name"] or "Email")
    head = (
        f"<mj-head><mj-title>{title}</mj-title>"
        f'<mj-attributes><mj-all font-family="{html.escape(font, quote=True)}" />'
        f'<mj-text color="{brand["text"]}" font-size="15px" line-height="1.5" />'
        f'<mj-section background-color="{settings.get("content_background", "#ffffff")}" />'
        "</mj-attributes>"
        '<mj-style inline="inline">a { color: '
        + brand["primary"]
        + "; }</mj-style>"
        + (f"<mj-preview>{settings['preheader']}</mj-preview>" if settings.get("preheader") else "")
        + "</mj-head>"
    )
    body = "".join(
        _block_products(data, ctx, index) if kind == "products" else RENDERERS[kind](data, ctx)
        for index, (kind, data) in enumerate(blocks)
    )
    background = settings.get("background", brand["background"])
    return f'<mjml>{head}<mj-body background-color="{background}" width="600px">{body}</mj-body></mjml>'


# A tag of ours in its comment (`_Vars.tags_in_comments`), once the placeholders are restored.
COMMENTED_TAG_RE = re.compile(r"<!--(\{%(?:(?!-->).)*?%\})-->", re.DOTALL)


def design_text_again(compiled_html):
    """The text part of a compiled design's HTML changed after compiling (product_cards.py): its
    tags, kept in comments in the HTML, are text again."""
    return design_text(COMMENTED_TAG_RE.sub(r"\1", compiled_html))


def design_text(compiled_html):
    """The text part: MJML's layout tables are layout, not data, so they are read as plain blocks."""
    converter = html2text.HTML2Text()
    converter.body_width = 0  # never wrap: a wrapped URL breaks in mail clients
    converter.ignore_images = True
    converter.ignore_tables = True
    converter.protect_links = True
    text = converter.handle(compiled_html)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def design_compile(design, *, brand=None):
    """{"mjml", "html", "text", "warnings"} of a design (a dict, or the editor's JSON text).

    Raises DesignError (a ValidationError on the `design` field) naming what to change."""
    if not isinstance(design, dict):
        design = design_parse(design)
        if design is None:
            raise DesignError("blocks", "a design needs at least one block.")
    ctx = _Context(brand or brand_defaults())
    blocks, settings = _clean(design, ctx)
    source = _mjml(blocks, settings, ctx)
    try:
        output = mrml.to_html(
            ctx.vars.tags_in_comments(source),
            parser_options=mrml.ParserOptions(include_loader=mrml.noop_loader()),
        )
    except Exception as exc:  # our MJML is built from validated values: this is a bug, said plainly
        raise DesignError("", f"The design could not be compiled ({type(exc).__name__}: {exc})."[:500])
    inlined = css_inline.inline(output.content, keep_style_tags=True, load_remote_stylesheets=False)
    # Literal braces that would open template code become {% templatetag %}: only our placeholders
    # turn into variables.
    safe = OPENING_RE.sub("{% templatetag openbrace %}", inlined)
    # The text part knows no comments: there the tags are text again, in their places.
    text = design_text(ctx.vars.tags_as_text(safe))
    return {
        "mjml": ctx.vars.restore(source),
        "html": ctx.vars.restore(safe),
        "text": ctx.vars.restore(text),
        "warnings": ctx.warnings,
    }
