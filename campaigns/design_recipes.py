"""The designs the block editor offers to start from ("Start from a recipe"). Each compiles as any
design; tests/campaigns/test_design_html.py holds every one to html-validate's email-relevant checks
and to no horizontal scroll at 375 px in chromium."""

FOOTER = {"type": "footer", "data": {"text": "You get this email because you shop with us."}}

RECIPES = {
    "newsletter": {
        "label": "Newsletter",
        "design": {
            "blocks": [
                {"type": "header", "data": {}},
                {"type": "heading", "data": {"text": 'Hello {{ customer.first_name|default:"there" }}'}},
                {"type": "text", "data": {"text": "Here is what is new this month."}},
                {"type": "image", "data": {"url": "https://placehold.co/1120x560.png", "alt": "This month"}},
                {
                    "type": "columns",
                    "data": {
                        "columns": [
                            {
                                "text": "<b>New arrivals</b><br>Fresh from the gardens.",
                                "link": "https://example.com/new",
                                "label": "See them",
                            },
                            {
                                "text": "<b>Guides</b><br>How to brew it right.",
                                "link": "https://example.com/guides",
                                "label": "Read",
                            },
                        ]
                    },
                },
                {"type": "products", "data": {"source": "bestsellers", "limit": 3, "per_row": 3}},
                {"type": "divider", "data": {}},
                {
                    "type": "social",
                    "data": {
                        "links": [
                            {"network": "instagram", "url": "https://instagram.com/"},
                            {"network": "facebook", "url": "https://facebook.com/"},
                        ]
                    },
                },
                FOOTER,
            ]
        },
    },
    "product_launch": {
        "label": "Product launch",
        "design": {
            "blocks": [
                {"type": "header", "data": {}},
                {
                    "type": "image",
                    "data": {"url": "https://placehold.co/1120x700.png", "alt": "The new product"},
                },
                {"type": "heading", "data": {"text": "Meet the new collection"}},
                {
                    "type": "text",
                    "data": {
                        "text": '{{ customer.first_name|default:"Hi" }}, it is here: made in small batches, in stock now.'
                    },
                },
                {
                    "type": "button",
                    "data": {"label": "Shop the collection", "link": "https://example.com/new"},
                },
                {"type": "products", "data": {"source": "bestsellers", "limit": 2, "per_row": 2}},
                FOOTER,
            ]
        },
    },
    "winback": {
        "label": "We miss you",
        "design": {
            "blocks": [
                {"type": "header", "data": {}},
                {
                    "type": "heading",
                    "data": {"text": 'We miss you, {{ customer.first_name|default:"friend" }}'},
                },
                {
                    "type": "text",
                    "data": {
                        "text": "It has been a while. Here is <b>10% off</b> your next order with the code <b>WELCOME10</b>."
                    },
                },
                {"type": "button", "data": {"label": "Come back", "link": "https://example.com/"}},
                {"type": "spacer", "data": {"height": 16}},
                FOOTER,
            ]
        },
    },
}
