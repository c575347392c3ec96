"""Order confirmation and shipping notice: once per order and kind, honouring email_transactional."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import email_templates, transactional
from campaigns.models import EmailTemplate
from customers.models import Customer, Interaction, Order, Product
from events.models import TransactionalEmail
from tenancy.services import PROVISION_HOOKS


def order_body(external_id="w-1001", email="ann@example.com", **extra):
    return {
        "external_id": external_id,
        "customer_email": email,
        "number": "1001",
        "status": "paid",
        "currency": "EUR",
        "total": "59.90",
        "placed_at": timezone.now().isoformat(),
        "items": [
            {"sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": "12.45"},
            {"sku": "TEE-9", "name": "T-shirt", "quantity": 1, "unit_price": "35.00"},
        ],
        **extra,
    }


@pytest.fixture
def shop(api, smtp_sink, eager_tasks, django_capture_on_commit_callbacks):
    """The webshop talking to the API; after-commit work (hooks, tasks) runs as it would in production."""

    class Shop:
        def post(self, path, data):
            with django_capture_on_commit_callbacks(execute=True):
                return api.post(path, data, format="json")

        def patch(self, path, data):
            with django_capture_on_commit_callbacks(execute=True):
                return api.patch(path, data, format="json")

    return Shop()


def test_it_sends_one_confirmation_and_one_shipping_notice_however_often_the_shop_repeats(shop, smtp_sink):
    statuses = [shop.post("/api/orders", order_body()).status_code for _ in range(3)]
    order = Order.objects.get(external_id="w-1001")
    patches = [shop.patch(f"/api/orders/{order.pk}", {"status": "shipped"}).status_code for _ in range(2)]

    assert statuses == [201, 200, 200] and patches == [200, 200]
    messages = smtp_sink.emails()
    assert sorted(m["Subject"] for m in messages) == [
        "Your order 1001 is confirmed",
        "Your order 1001 is on its way",
    ]
    assert [m["To"] for m in messages] == ["ann@example.com", "ann@example.com"]
    confirmation = next(m for m in messages if "confirmed" in m["Subject"])
    assert confirmation.get_content_type() == "multipart/alternative"
    assert confirmation.defects == []
    text = confirmation.get_body(preferencelist=("plain",)).get_content()
    html = confirmation.get_body(preferencelist=("html",)).get_content()
    assert "- 2 x Mug: 24.90 EUR" in text and "Total: 59.90 EUR" in text
    assert "<strong>59.90 EUR</strong>" in html and "Hi there," in text
    assert confirmation["Auto-Submitted"] == "auto-generated"
    assert confirmation["Message-ID"].endswith("@vecton.hu>")
    customer = Customer.objects.get(email="ann@example.com")
    logged = Interaction.objects.filter(customer=customer, kind="transactional_email").order_by("id")
    assert [(i.data["key"], i.data["status"]) for i in logged] == [
        ("order_confirmation", "sent"),
        ("order_shipped", "sent"),
    ]
    assert logged[0].body == "Order confirmation for order 1001 sent to ann@example.com."
    assert logged[0].data["message_id"] == confirmation["Message-ID"]
    rows = TransactionalEmail.objects.filter(tenant="tenant_a", order_id=order.pk).order_by("kind")
    assert [(r.kind, r.status, r.attempts) for r in rows] == [
        ("order_confirmation", "sent", 1),
        ("order_shipped", "sent", 1),
    ]


def test_a_customer_who_turned_transactional_email_off_gets_none_and_the_log_says_why(shop, smtp_sink):
    created = shop.post(
        "/api/customers", {"email": "quiet@example.com", "first_name": "Q", "email_transactional": False}
    )
    assert created.status_code == 201

    shop.post("/api/orders", order_body(external_id="w-2", email="quiet@example.com"))
    order = Order.objects.get(external_id="w-2")
    shop.patch(f"/api/orders/{order.pk}", {"status": "shipped"})

    assert smtp_sink.emails() == []
    logged = Interaction.objects.filter(customer__email="quiet@example.com", kind="transactional_email")
    assert sorted(i.body for i in logged) == [
        "Order confirmation for order 1001 not sent: the customer turned transactional email off.",
        "Shipping notice for order 1001 not sent: the customer turned transactional email off.",
    ]
    assert {i.data["status"] for i in logged} == {"skipped"}
    assert set(
        TransactionalEmail.objects.filter(order_id=order.pk, tenant="tenant_a").values_list(
            "status", flat=True
        )
    ) == {"skipped"}


def test_an_order_recorded_already_shipped_gets_both_emails(shop, smtp_sink):
    shop.post("/api/orders", order_body(external_id="w-3", status="shipped"))

    assert sorted(m["Subject"] for m in smtp_sink.emails()) == [
        "Your order 1001 is confirmed",
        "Your order 1001 is on its way",
    ]


def test_a_historic_or_cancelled_order_gets_no_confirmation(shop, smtp_sink):
    old = (timezone.now() - timedelta(days=30)).isoformat()
    shop.post("/api/orders", order_body(external_id="w-old", placed_at=old))
    shop.post("/api/orders", order_body(external_id="w-cancelled", status="cancelled"))

    assert smtp_sink.emails() == []
    ids = Order.objects.filter(external_id__in=["w-old", "w-cancelled"]).values_list("pk", flat=True)
    assert not TransactionalEmail.objects.filter(tenant="tenant_a", order_id__in=list(ids)).exists()


def test_it_renders_the_tenants_own_template(shop, smtp_sink):
    template = transactional.transactional_template(key="order_confirmation")
    template.subject = "Köszönjük, {{ customer.first_name }}! Rendelés: {{ order.number }}"
    template.save()

    shop.post("/api/customers", {"email": "eva@example.com", "first_name": "Éva"})
    shop.post("/api/orders", order_body(external_id="w-4", email="eva@example.com"))

    assert [m["Subject"] for m in smtp_sink.emails()] == ["Köszönjük, Éva! Rendelés: 1001"]


def test_it_shows_a_designed_templates_products_as_they_are_when_it_is_sent(shop, smtp_sink):
    for sku, name, in_stock in (("TEA-1", "Green tea", True), ("TEA-2", "Black tea", False)):
        Product.objects.create(
            sku=sku,
            name=name,
            url=f"https://shop.example/{sku}",
            price=Decimal("9"),
            currency="EUR",
            in_stock=in_stock,
        )
    template = transactional.transactional_template(key="order_confirmation")
    design = {
        "blocks": [
            {"type": "text", "data": {"text": "Thank you, {{ customer.first_name }}"}},
            {"type": "products", "data": {"source": "skus", "skus": ["TEA-2", "TEA-1"]}},
        ]
    }
    email_templates.template_update(template=template, design=design)
    # Saved with Black tea sold out; when the order comes, it is back and Green tea is gone.
    Product.objects.filter(sku="TEA-2").update(in_stock=True)
    Product.objects.filter(sku="TEA-1").update(in_stock=False)

    shop.post("/api/orders", order_body(external_id="w-5"))

    [message] = smtp_sink.emails()
    html, text = (message.get_body((part,)).get_content() for part in ("html", "plain"))
    assert "Black tea" in html and "Black tea" in text
    assert "Green tea" not in html and "Green tea" not in text


def test_it_recreates_a_missing_default_template_when_sending(shop, smtp_sink):
    EmailTemplate.objects.filter(kind="transactional").delete()

    shop.post("/api/orders", order_body(external_id="w-5"))

    assert [m["Subject"] for m in smtp_sink.emails()] == ["Your order 1001 is confirmed"]
    assert sorted(EmailTemplate.objects.filter(kind="transactional").values_list("key", flat=True)) == [
        "order_confirmation"
    ]


def test_a_transient_smtp_error_is_retried_and_the_email_still_goes_once(shop, smtp_sink):
    smtp_sink.refuse_next = ["451 4.3.0 Try again later"]
    shop.post("/api/orders", order_body(external_id="w-6"))
    row = TransactionalEmail.objects.get(
        tenant="tenant_a", kind="order_confirmation", order_id=Order.objects.get(external_id="w-6").pk
    )
    assert (row.status, row.attempts, smtp_sink.emails()) == ("sending", 1, [])
    assert row.reason.startswith("451")
    assert 29 <= (row.lease_until - timezone.now()).total_seconds() <= 31

    assert transactional.transactional_email_send(email_id=row.pk) == (
        "busy",
        None,
    )  # not before the retry time
    TransactionalEmail.objects.filter(pk=row.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert transactional.transactional_email_send(email_id=row.pk) == ("sent", None)
    assert transactional.transactional_email_send(email_id=row.pk) == ("busy", None)

    assert len(smtp_sink.emails()) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_permanent_refusal_marks_it_failed_with_the_reason(shop, smtp_sink):
    smtp_sink.refuse_next = ["550 5.1.1 No such user"]

    shop.post("/api/orders", order_body(external_id="w-7", email="nobody@example.com"))

    row = TransactionalEmail.objects.get(tenant="tenant_a", order_id=Order.objects.get(external_id="w-7").pk)
    assert row.status == "failed"
    assert (
        row.reason == "Order confirmation for order 1001 not sent: recipient refused: 550 5.1.1 No such user"
    )
    logged = Interaction.objects.get(customer__email="nobody@example.com", kind="transactional_email")
    assert (logged.body, logged.data["status"]) == (row.reason, "failed")
    assert smtp_sink.emails() == []


def test_two_workers_never_both_claim_one_email(tenant):
    row = TransactionalEmail.objects.create(tenant="tenant_a", order_id=999_999, kind="order_confirmation")

    assert transactional.transactional_email_claim(email_id=row.pk) is True
    assert transactional.transactional_email_claim(email_id=row.pk) is False


def test_a_request_is_only_made_once_per_order_and_kind(tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = transactional.transactional_email_request(order_id=123, key="order_confirmation")
        second = transactional.transactional_email_request(order_id=123, key="order_confirmation")
        other = transactional.transactional_email_request(order_id=123, key="order_shipped")

    assert first is not None and second is None and other is not None
    assert len(callbacks) == 2  # one task per created request


def test_each_tenant_has_its_own_once_key(tenant, other_tenant):
    assert transactional.transactional_email_request(order_id=77, key="order_confirmation") is not None
    with schema_context(other_tenant.schema_name):
        assert transactional.transactional_email_request(order_id=77, key="order_confirmation") is not None

    assert sorted(TransactionalEmail.objects.filter(order_id=77).values_list("tenant", flat=True)) == [
        "tenant_a",
        "tenant_b",
    ]


def test_a_request_whose_task_was_lost_is_sent_by_the_sweeper(shop, smtp_sink, monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("task broker down")

    monkeypatch.setattr(transactional.send_transactional_email, "apply_async", broker_down)
    shop.post("/api/orders", order_body(external_id="w-8"))
    assert smtp_sink.emails() == []
    monkeypatch.undo()

    assert transactional.transactional_emails_requeue(older_than=timedelta(0)) >= 1

    assert [m["Subject"] for m in smtp_sink.emails()] == ["Your order 1001 is confirmed"]


def test_new_tenants_start_with_a_default_template_for_each_key(tenant):
    EmailTemplate.objects.filter(kind="transactional").delete()

    assert transactional.transactional_templates_ensure in PROVISION_HOOKS
    transactional.transactional_templates_ensure(tenant)
    transactional.transactional_templates_ensure(tenant)  # idempotent

    templates = EmailTemplate.objects.filter(kind="transactional").order_by("key")
    assert [(t.key, t.name) for t in templates] == [
        ("order_confirmation", "Order confirmation"),
        ("order_shipped", "Order shipped"),
    ]


def test_a_broken_template_fails_the_email_and_the_log_names_the_line(shop, smtp_sink):
    template = transactional.transactional_template(key="order_confirmation")
    EmailTemplate.objects.filter(pk=template.pk).update(
        html_body="<p>Hi</p>\n{% if %}"
    )  # bypassing validation

    shop.post("/api/orders", order_body(external_id="w-9"))

    assert smtp_sink.emails() == []
    row = TransactionalEmail.objects.get(tenant="tenant_a", order_id=Order.objects.get(external_id="w-9").pk)
    assert row.status == "failed"
    assert row.reason.startswith(
        "Order confirmation for order 1001 not sent: the template is broken (html_body: Line 2:"
    )
    logged = Interaction.objects.get(customer__email="ann@example.com", kind="transactional_email")
    assert logged.body == row.reason


def test_the_bulk_endpoint_repeating_an_order_sends_one_confirmation(shop, smtp_sink):
    response = shop.post("/api/orders/bulk", [order_body(external_id="w-bulk")] * 3)

    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == ["created", "updated", "updated"]
    assert [m["Subject"] for m in smtp_sink.emails()] == ["Your order 1001 is confirmed"]
