"""Create the demo tenant with a few hundred customers, orders, tags, a segment, a template and a
draft campaign. Idempotent: an existing demo tenant is left as it is.

Development only (`make run`, docker-compose.dev.yml): its admin has a published password, so with
APP_ENV=production it refuses and creates nothing."""

import random
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import Campaign, EmailTemplate
from customers.models import Customer, CustomerTag, Order, OrderItem, Tag
from flows import recipes, services
from segments.models import Segment
from tenancy.models import Tenant
from tenancy.services import public_tenant_ensure, schema_for_slug, tenant_create

FIRST = [
    "Anna",
    "Bence",
    "Csilla",
    "Dániel",
    "Eszter",
    "Ferenc",
    "Gábor",
    "Hanna",
    "István",
    "Judit",
    "Katalin",
    "László",
    "Márton",
    "Nóra",
    "Orsolya",
    "Péter",
    "Réka",
    "Sándor",
    "Tímea",
    "Zoltán",
]
LAST = ["Nagy", "Kovács", "Tóth", "Szabó", "Horváth", "Varga", "Kiss", "Molnár", "Németh", "Farkas"]
CITIES = [
    ("Budapest", "HU"),
    ("Szeged", "HU"),
    ("Győr", "HU"),
    ("Debrecen", "HU"),
    ("Pécs", "HU"),
    ("Wien", "AT"),
    ("Bratislava", "SK"),
    ("", ""),
]
TAGS = ["vip", "newsletter", "wholesale", "returning", "gift-buyer"]
SKUS = [
    ("TEA-001", "Green tea", "2490.00"),
    ("TEA-002", "Black tea", "1990.00"),
    ("MUG-010", "Ceramic mug", "4590.00"),
    ("SET-100", "Gift set", "12990.00"),
]


class Command(BaseCommand):
    help = "Create and fill the demo tenant (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--slug", default="demo")
        parser.add_argument("--domain", default="demo.localhost")
        parser.add_argument("--admin-email", default="admin@demo.localhost")
        parser.add_argument("--admin-password", default="demo-admin-2024")
        parser.add_argument("--customers", type=int, default=300)

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError(
                "seed_demo makes a tenant whose admin password is published: it runs only with "
                "APP_ENV=development. Create real tenants with create_crm_tenant."
            )
        public_tenant_ensure()
        schema = schema_for_slug(options["slug"])
        if Tenant.objects.filter(schema_name=schema).exists():
            self.stdout.write(f"Demo tenant '{options['slug']}' exists; left as it is.")
            return
        created = tenant_create(
            slug=options["slug"],
            domain=options["domain"],
            name="Demo Teashop",
            admin_email=options["admin_email"],
            admin_password=options["admin_password"],
        )
        with schema_context(created.tenant.schema_name):
            self.fill(options["customers"])
        connection.set_schema_to_public()
        self.stdout.write(
            self.style.SUCCESS(f"Demo tenant ready at {options['domain']} ({created.seconds:.2f} s)")
        )

    @transaction.atomic
    def fill(self, count):
        rng = random.Random(42)
        now = timezone.now()
        tags = [Tag.objects.get_or_create(name=name)[0] for name in TAGS]
        customers = []
        for i in range(count):
            city, country = rng.choice(CITIES)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            customers.append(
                Customer(
                    email=f"{first.lower()}.{last.lower()}.{i}@example.com".encode(
                        "ascii", "ignore"
                    ).decode(),
                    first_name=first,
                    last_name=last,
                    city=city,
                    country=country,
                    phone=f"+3630{rng.randint(1000000, 9999999)}",
                    email_marketing=rng.random() < 0.8,
                    attributes={"loyalty": rng.choice(["gold", "silver", "bronze"])},
                    created_at=now - timedelta(days=rng.randint(0, 720)),
                )
            )
        customers = Customer.objects.bulk_create(customers)
        CustomerTag.objects.bulk_create(
            [CustomerTag(customer=c, tag=t) for c in customers for t in tags if rng.random() < 0.2]
        )
        orders, items = [], []
        for c in customers:
            for n in range(rng.choice([0, 0, 1, 1, 2, 3, 5])):
                sku, name, price = rng.choice(SKUS)
                quantity = rng.randint(1, 4)
                order = Order(
                    external_id=f"demo-{c.pk}-{n}",
                    customer=c,
                    number=f"D{c.pk:05d}{n}",
                    status=rng.choice(["paid", "shipped", "delivered", "delivered", "cancelled"]),
                    currency="HUF",
                    total=Decimal(price) * quantity,
                    placed_at=now - timedelta(days=rng.randint(0, 365), hours=rng.randint(0, 23)),
                )
                orders.append(order)
                items.append(
                    (order, OrderItem(sku=sku, name=name, quantity=quantity, unit_price=Decimal(price)))
                )
        Order.objects.bulk_create(orders)
        for order, item in items:
            item.order = order
        OrderItem.objects.bulk_create([item for _, item in items])
        with connection.cursor() as cursor:
            # The aggregates as the customers services keep them: counting orders only.
            cursor.execute("""
                UPDATE customers_customer c SET total_spent = a.total, order_count = a.n,
                       first_order_at = a.first_at, last_order_at = a.last_at
                FROM (SELECT customer_id, SUM(total) AS total, COUNT(*) AS n,
                             MIN(placed_at) AS first_at, MAX(placed_at) AS last_at
                      FROM customers_order WHERE status NOT IN ('cancelled', 'refunded')
                      GROUP BY customer_id) a
                WHERE a.customer_id = c.id
            """)
        segment = Segment.objects.create(
            name="Loyal Budapest buyers",
            description="Spent over 10,000 HUF, in Budapest, or tagged VIP",
            rules={
                "combinator": "and",
                "not": False,
                "rules": [
                    {"field": "total_spent", "operator": ">", "value": "10000"},
                    {
                        "combinator": "or",
                        "rules": [
                            {"field": "city", "operator": "=", "value": "Budapest"},
                            {"field": "tags", "operator": "contains", "value": "vip"},
                        ],
                    },
                ],
            },
        )
        template = EmailTemplate.objects.create(
            name="Autumn newsletter",
            kind="marketing",
            subject="{{ customer.first_name|default:'Friend' }}, autumn teas are here",
            html_body=(
                "<h1>Hello {{ customer.first_name|default:'there' }}!</h1>"
                '<p>Our autumn selection has arrived. <a href="https://example.com/autumn">See the teas</a>.</p>'
                '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
            ),
        )
        Campaign.objects.create(
            name="Autumn launch",
            subject=template.subject,
            template=template,
            segment=segment,
            from_name="Demo Teashop",
        )
        self.flows(customers)

    def flows(self, customers):
        """An active welcome flow and an active abandoned-cart flow (its delays short, so a newcomer
        sees runs move within minutes), and a few carts abandoned just now."""
        welcome = recipes.flow_from_recipe(key="welcome")
        services.flow_activate(flow=welcome)
        cart = recipes.flow_from_recipe(key="abandoned_cart")
        steps = [dict(step) for step in cart.steps]
        steps[0] = {"id": "wait", "type": "delay", "minutes": 2}
        steps[2] = {**steps[2], "timeout": {"minutes": 30}}
        cart = services.flow_update(flow=cart, steps=steps, frequency_cap_hours=0)
        services.flow_activate(flow=cart)
        shoppers = [customer for customer in customers if customer.email_marketing][:5]
        now = timezone.now()
        services.events_record(
            events=[
                {
                    "event_id": f"demo-cart-{customer.pk}",
                    "name": "cart.abandoned",
                    "customer_id": customer.pk,
                    "occurred_at": now,
                    "properties": {"total": f"{12 + index * 7}.90 EUR", "items": index + 1},
                }
                for index, customer in enumerate(shoppers)
            ]
        )
