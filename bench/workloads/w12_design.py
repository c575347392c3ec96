"""Row 12: email design. A block template is compiled once per save (blocks -> MJML -> HTML -> inlined
CSS -> text), never per recipient; per recipient it is rendered like any template. Measured: the
compile of a shipped-size recipe, and the per-recipient render of the compiled template against a raw
HTML template of the same size (same variables, the same number of bytes, the same text part) in the
same run."""

import statistics
import time

from django_tenants.utils import schema_context

from bench.core import Check, Row
from campaigns.design import design_compile
from campaigns.rendering import compile_message
from customers.models import Product

TARGET = "per-recipient render ≤ 1.2× a raw HTML template of the same size; compile once per save"
COMPILE_RUNS = 10
ROUNDS = 6
RECIPE = {
    "blocks": [
        {"type": "header", "data": {"link": "https://shop.example/"}},
        {"type": "heading", "data": {"text": 'Hello {{ customer.first_name|default:"there" }}'}},
        {
            "type": "text",
            "data": {
                "text": "Our <b>spring</b> teas are in, {{ customer.first_name }}. "
                + "Fresh leaves from small gardens, picked this April. " * 6
            },
        },
        {"type": "image", "data": {"url": "https://shop.example/hero.jpg", "alt": "Teas", "width": 560}},
        {"type": "button", "data": {"label": "Shop the collection", "link": "https://shop.example/spring"}},
        {
            "type": "products",
            "data": {"source": "skus", "skus": [f"BENCH-{n}" for n in range(1, 7)], "per_row": 3},
        },
        {
            "type": "columns",
            "data": {
                "columns": [
                    {
                        "text": "Free shipping over 50 EUR",
                        "link": "https://shop.example/shipping",
                        "label": "More",
                    },
                    {"text": "Brewing guides for {{ customer.city|default:'you' }}"},
                ]
            },
        },
        {"type": "divider", "data": {}},
        {
            "type": "social",
            "data": {"links": [{"network": "instagram", "url": "https://instagram.com/shop"}]},
        },
        {"type": "footer", "data": {"text": "You get this because you bought from us."}},
    ]
}
RAW_HTML = (
    '<html><head><title>Spring</title></head><body style="margin:0;background:#f4f4f5">'
    '<table width="100%"><tr><td align="center"><table width="600" style="background:#ffffff">'
    '<tr><td><h1>Hello {{ customer.first_name|default:"there" }}</h1>'
    "<p>Our <b>spring</b> teas are in, {{ customer.first_name }}.</p>"
    '<p><a href="https://shop.example/spring">Shop the collection</a></p>'
    "<p>Brewing guides for {{ customer.city|default:'you' }}</p>"
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> · <a href="{{ web_version_url }}">View in your browser</a>'
    "</p>{padding}</td></tr></table></td></tr></table></body></html>"
)


def _products():
    Product.objects.bulk_create(
        [
            Product(
                sku=f"BENCH-{n}",
                name=f"Tea {n}",
                url=f"https://shop.example/p/{n}",
                image_url=f"https://shop.example/p/{n}.jpg",
                price=f"{n}.90",
                currency="EUR",
            )
            for n in range(1, 7)
        ],
        ignore_conflicts=True,
    )


def _contexts(count):
    return [
        {
            "customer": {
                "first_name": f"Name{i}",
                "last_name": "X",
                "city": "Budapest",
                "email": f"c{i}@example.com",
            },
            "unsubscribe_url": f"https://t.example/u/{i}",
            "preferences_url": f"https://t.example/p/{i}",
            "web_version_url": f"https://t.example/v/{i}",
            "campaign": {"name": "Spring"},
            "crm_links": {},
        }
        for i in range(count)
    ]


def _per_recipient(compiled, contexts):
    started = time.perf_counter()
    for context in contexts:
        compiled.render(context)
    return (time.perf_counter() - started) / len(contexts)


def run(ctx, *, recipients=None):
    recipients = recipients or (20_000 if ctx.scale.name == "full" else 1_000)
    with schema_context(ctx.data_schema):
        _products()
        compile_times = []
        for _ in range(COMPILE_RUNS):
            started = time.perf_counter()
            compiled = design_compile(RECIPE)
            compile_times.append(time.perf_counter() - started)
    html = compiled["html"]
    # The raw template: the same variables, padded with static markup to the same number of bytes.
    raw = RAW_HTML.replace("{padding}", "")
    padding = "<p>" + "x" * max(0, len(html.encode()) - len(raw.encode()) - 7) + "</p>"
    raw = RAW_HTML.replace("{padding}", padding)
    block_message = compile_message(subject="Spring", html=html, text=compiled["text"])
    # The same text part for both: only the HTML differs (a text part derived from the padded raw HTML
    # would be 40 KB of padding, and the comparison would flatter the block template).
    raw_message = compile_message(subject="Spring", html=raw, text=compiled["text"])
    contexts = _contexts(recipients)
    rounds_block, rounds_raw = [], []
    _per_recipient(raw_message, contexts[:200])  # warm-up of both
    _per_recipient(block_message, contexts[:200])
    for index in range(ROUNDS):  # alternating rounds, each one first in turn: the same noise for both
        if index % 2:
            rounds_raw.append(_per_recipient(raw_message, contexts))
            rounds_block.append(_per_recipient(block_message, contexts))
        else:
            rounds_block.append(_per_recipient(block_message, contexts))
            rounds_raw.append(_per_recipient(raw_message, contexts))
    ours, base = statistics.median(rounds_block) * 1e6, statistics.median(rounds_raw) * 1e6
    compile_ms = statistics.median(compile_times) * 1000
    sample = block_message.render(contexts[1])
    ctx.log(f"row 12: compile {compile_ms:.1f} ms; render {ours:.0f} µs vs raw {base:.0f} µs per recipient")
    return Row(
        key="12",
        workload=f"render a block template ({len(html.encode()) // 1024} KB compiled) per recipient, {recipients:,} recipients",
        unit="µs",
        ours=ours,
        baseline=base,
        target=TARGET,
        rule=lambda ours, base, ratio: ratio <= 1.2,
        note=f"compile (blocks → MJML → HTML → inlined CSS → text) {compile_ms:.1f} ms once per save "
        f"(median of {COMPILE_RUNS}); raw template {len(raw.encode()) // 1024} KB; medians of {ROUNDS} alternating rounds",
        checks=[
            Check("personalised", "Hello Name1" in sample.html and "Name1" in sample.text, True),
            Check("responsive", "@media" in html, True),
            Check("product cards", sum(f"Tea {n}" in html for n in range(1, 7)), 6),
            Check("same size", abs(len(raw.encode()) - len(html.encode())) < 64, True),
        ],
    )
