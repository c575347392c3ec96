"""Ready-made flows: each recipe creates a draft flow with sensible templates of its own (marketers
then adjust the wording, the delays and the sender, and activate)."""

from dataclasses import dataclass

from django.db import transaction

from campaigns.models import EmailTemplate
from segments.models import Segment

from . import services


@dataclass(frozen=True)
class Recipe:
    key: str
    name: str
    description: str
    trigger: dict
    # Steps with "template": "<template key>" placeholders, resolved to new templates' ids.
    steps: list
    templates: dict  # key -> (subject, html)
    reentry: object = "never"
    exit_rules: dict | None = None


def _html(*paragraphs, button=None):
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    if button:
        label, url = button
        body += f'<p><a href="{url}" style="background:#16a34a;color:#fff;padding:10px 16px;border-radius:6px;text-decoration:none">{label}</a></p>'
    return f"<html><body>{body}</body></html>"


ORDERED_RECENTLY = {
    "combinator": "and",
    "rules": [{"field": "last_order_at", "operator": "inLastDays", "value": 1}],
}

RECIPES = [
    Recipe(
        key="welcome",
        name="Welcome series",
        description="A warm hello when someone becomes a customer, tips two days later.",
        trigger={"type": "customer_created"},
        steps=[
            {"id": "hello", "type": "email", "template": "welcome"},
            {"id": "pause", "type": "delay", "days": 2},
            {"id": "tips", "type": "email", "template": "tips"},
        ],
        templates={
            "welcome": (
                "Welcome, {{ customer.first_name|default:'there' }}!",
                _html(
                    "Hi {{ customer.first_name|default:'there' }},",
                    "Thanks for joining us. Here is what we love most.",
                    button=("Start shopping", "https://shop.example/"),
                ),
            ),
            "tips": (
                "Three tips for your first order",
                _html("Free shipping over 50, easy returns, and a gift with every tenth order."),
            ),
        },
    ),
    Recipe(
        key="abandoned_cart",
        name="Abandoned cart",
        description="A reminder an hour after a cart is left, a last call a day later unless they ordered.",
        trigger={"type": "event", "name": "cart.abandoned"},
        steps=[
            {"id": "wait", "type": "delay", "hours": 1},
            {"id": "remind", "type": "email", "template": "remind"},
            {
                "id": "order",
                "type": "wait_for",
                "event": "order_placed",
                "timeout": {"hours": 24},
                "yes": "done",
            },
            {"id": "last_call", "type": "email", "template": "last_call"},
            {"id": "done", "type": "exit"},
        ],
        templates={
            "remind": (
                "You left something in your cart, {{ customer.first_name|default:'friend' }}",
                _html(
                    "Your cart ({{ event.properties.total }}) is waiting for you.",
                    button=("Back to my cart", "https://shop.example/cart"),
                ),
            ),
            "last_call": (
                "Last call for your cart",
                _html(
                    "We kept your cart for you, but not for long.",
                    button=("Finish my order", "https://shop.example/cart"),
                ),
            ),
        },
        reentry={"after_days": 7},
        exit_rules=ORDERED_RECENTLY,
    ),
    Recipe(
        key="post_purchase",
        name="Post-purchase review request",
        description="Ask for a review a week after an order was shipped.",
        trigger={"type": "order_status", "status": "shipped"},
        steps=[
            {"id": "wait", "type": "delay", "days": 7},
            {"id": "review", "type": "email", "template": "review"},
        ],
        templates={
            "review": (
                "How do you like your order {{ order.number }}?",
                _html(
                    "Hi {{ customer.first_name|default:'there' }}, we would love to hear what you think.",
                    button=("Write a review", "https://shop.example/reviews"),
                ),
            )
        },
        reentry="always",
    ),
    Recipe(
        key="win_back",
        name="Win-back after 90 days",
        description="Customers whose last order is 90 days old get a we-miss-you offer.",
        trigger={"type": "segment_entered", "segment": None},
        steps=[
            {"id": "miss_you", "type": "email", "template": "miss_you"},
            {"id": "wait", "type": "delay", "days": 5},
            {
                "id": "came_back",
                "type": "branch",
                "rules": ORDERED_RECENTLY,
                "yes": "done",
            },
            {"id": "offer", "type": "email", "template": "offer"},
            {"id": "done", "type": "exit"},
        ],
        templates={
            "miss_you": (
                "We miss you, {{ customer.first_name|default:'friend' }}",
                _html(
                    "It has been a while. Here is what is new.",
                    button=("See what's new", "https://shop.example/new"),
                ),
            ),
            "offer": (
                "10% off, just for you",
                _html(
                    "Use code COMEBACK10 on your next order.", button=("Shop now", "https://shop.example/")
                ),
            ),
        },
        reentry={"after_days": 180},
    ),
    Recipe(
        key="birthday",
        name="Birthday",
        description="A birthday greeting with a gift on the customer's birthday (attributes.birthday), every year.",
        trigger={"type": "date", "attribute": "attributes.birthday", "offset_days": 0},
        steps=[{"id": "greeting", "type": "email", "template": "birthday"}],
        templates={
            "birthday": (
                "Happy birthday, {{ customer.first_name|default:'friend' }}!",
                _html(
                    "A little gift from us: free shipping all week.",
                    button=("Claim my gift", "https://shop.example/gift"),
                ),
            )
        },
        reentry="always",
    ),
]
BY_KEY = {recipe.key: recipe for recipe in RECIPES}


def _win_back_segment():
    rules = {
        "combinator": "and",
        "rules": [
            {"field": "order_count", "operator": ">", "value": "0"},
            {"field": "last_order_at", "operator": "notInLastDays", "value": 90},
        ],
    }
    segment = Segment.objects.filter(name="No order for 90 days").first()
    return segment or Segment.objects.create(name="No order for 90 days", kind="dynamic", rules=rules)


def flow_from_recipe(*, key, from_email=""):
    """A draft flow (and its templates) from a recipe."""
    recipe = BY_KEY[key]
    with transaction.atomic():
        ids = {
            template_key: EmailTemplate.objects.create(
                name=f"{recipe.name}: {template_key.replace('_', ' ')}",
                subject=subject,
                html_body=html,
                kind="marketing",
            ).pk
            for template_key, (subject, html) in recipe.templates.items()
        }
        steps = [
            {**step, "template": ids[step["template"]]} if step["type"] == "email" else dict(step)
            for step in recipe.steps
        ]
        trigger = dict(recipe.trigger)
        if trigger["type"] == "segment_entered":
            trigger["segment"] = _win_back_segment().pk
        return services.flow_create(
            name=recipe.name,
            trigger=trigger,
            steps=steps,
            reentry=recipe.reentry,
            exit_rules=recipe.exit_rules,
            from_email=from_email,
        )
