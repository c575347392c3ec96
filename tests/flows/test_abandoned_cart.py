"""The abandoned-cart flow in process (PRODUCT.md "Flows"): event -> 1 h delay -> email -> wait for
an order 24 h -> second email; time is moved by hand, mail goes to Django's locmem backend."""

import email
import email.policy

from django.core import mail

from campaigns.models import CampaignRecipient
from flows.models import CustomEvent, FlowRun, FlowStepLog

from .conftest import cart_flow_body, customer, make_active_flow, make_template, post_event, tick, time_passes


def _parse(message):
    return email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)


def _run(flow_id, who):
    return FlowRun.objects.get(flow_id=flow_id, customer=who)


def test_it_sends_the_first_email_after_the_delay_with_the_carts_properties(tenant, api):
    flow_id = make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))
    anna = customer("anna@example.com")

    assert (
        post_event(api, "cart-1", anna, cart_url="https://shop.example/cart/1", total="59.80").status_code
        == 202
    )
    tick()
    run = _run(flow_id, anna)
    assert (run.status, run.step_id) == ("active", "remind")  # the delay is a row with a due time
    assert mail.outbox == []

    time_passes(flow_id)
    tick()

    assert len(mail.outbox) == 1
    message = _parse(mail.outbox[0])
    assert message["To"] == "anna@example.com"
    assert message["Subject"] == "You left something, Anna"
    html = message.get_body(("html",)).get_content()
    assert "your cart of 59.80 waits" in html
    assert "/t/c/" in html  # links are tracked like a campaign's
    assert "/t/o/" in html  # and so are opens
    assert message["Message-ID"].startswith(f"<f.r{run.pk}.remind.")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    log = FlowStepLog.objects.get(run=run, step_id="remind")
    assert log.recipient.status == "sent"
    assert _run(flow_id, anna).step_id == "order"


def test_a_customer_who_orders_during_the_wait_gets_no_second_email(
    tenant, api, django_capture_on_commit_callbacks
):
    flow_id = make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))
    anna = customer("anna@example.com")
    post_event(api, "cart-1", anna, cart_url="https://shop.example/cart/1", total="10")
    tick()
    time_passes(flow_id)
    tick()
    tick()  # the run starts waiting for an order
    assert len(mail.outbox) == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/orders",
            {
                "external_id": "o-1",
                "customer": anna.pk,
                "number": "1",
                "status": "paid",
                "currency": "EUR",
                "total": "10.00",
                "items": [],
            },
            format="json",
        )
    assert response.status_code in (200, 201), response.json()
    assert _run(flow_id, anna).due_at is not None
    time_passes(flow_id, seconds=0)
    tick()

    run = _run(flow_id, anna)
    assert (run.status, run.exit_reason) == ("completed", "exit step")
    assert FlowStepLog.objects.get(run=run, step_id="order").status == "yes"
    assert not FlowStepLog.objects.filter(run=run, step_id="again").exists()
    assert len(mail.outbox) == 1


def test_a_customer_who_does_not_order_gets_the_second_email_after_the_timeout(tenant, api):
    flow_id = make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))
    bob = customer("bob@example.com")
    post_event(api, "cart-2", bob)
    tick()
    time_passes(flow_id)
    tick()
    tick()
    time_passes(flow_id, seconds=23 * 3600)
    tick()
    assert len(mail.outbox) == 1  # the wait is not over yet
    assert _run(flow_id, bob).step_id == "order"

    time_passes(flow_id, seconds=3600 + 1)
    tick()

    assert [_parse(m)["Subject"] for m in mail.outbox] == ["You left something, Bob", "Last call, Bob"]
    run = _run(flow_id, bob)
    assert FlowStepLog.objects.get(run=run, step_id="order").status == "no"
    assert run.status == "completed"


def test_a_duplicate_event_id_makes_no_second_run(tenant, api):
    flow_id = make_active_flow(
        api, cart_flow_body(make_template(), make_template("Second"), reentry="always")
    )
    anna = customer("anna@example.com")

    first = post_event(api, "cart-1", anna)
    again = post_event(api, "cart-1", anna)

    assert (first.status_code, first.json()) == (202, {"id": "cart-1", "stored": True})
    assert (again.status_code, again.json()) == (202, {"id": "cart-1", "stored": False})
    assert CustomEvent.objects.filter(event_id="cart-1").count() == 1
    assert FlowRun.objects.filter(flow_id=flow_id).count() == 1
    assert anna.interactions.filter(kind="custom_event").count() == 1


def test_reentry_never_holds_after_the_run_finished(tenant, api):
    flow_id = make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))
    anna = customer("anna@example.com")
    post_event(api, "cart-1", anna)
    FlowRun.objects.filter(flow_id=flow_id).update(status="completed", due_at=None)

    assert post_event(api, "cart-2", anna).status_code == 202

    assert FlowRun.objects.filter(flow_id=flow_id).count() == 1


def test_reentry_always_enters_again_only_after_the_run_finished(tenant, api):
    flow_id = make_active_flow(
        api, cart_flow_body(make_template(), make_template("Second"), reentry="always")
    )
    anna = customer("anna@example.com")
    post_event(api, "cart-1", anna)
    post_event(api, "cart-2", anna)  # still in the first run
    assert FlowRun.objects.filter(flow_id=flow_id).count() == 1
    FlowRun.objects.filter(flow_id=flow_id).update(status="completed", due_at=None)

    post_event(api, "cart-3", anna)

    assert sorted(FlowRun.objects.filter(flow_id=flow_id).values_list("entry_number", flat=True)) == [1, 2]


def test_a_customer_without_consent_is_skipped_and_the_run_moves_on(tenant, api):
    flow_id = make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))
    carl = customer("carl@example.com", consent=False)
    post_event(api, "cart-3", carl)
    tick()
    time_passes(flow_id)
    tick()

    assert mail.outbox == []
    log = FlowStepLog.objects.get(run__customer=carl, step_id="remind")
    assert (log.recipient.status, log.recipient.error) == (
        "skipped",
        "the customer withdrew marketing consent",
    )
    runs = api.get(f"/api/flows/{flow_id}/runs?customer={carl.pk}").json()["results"]
    step = next(s for s in runs[0]["steps"] if s["step_id"] == "remind")
    assert (step["message_status"], step["message_error"]) == (
        "skipped",
        "the customer withdrew marketing consent",
    )
    assert _run(flow_id, carl).step_id == "order"


def test_the_frequency_cap_skips_and_records_why(tenant, api):
    flow_id = make_active_flow(
        api, cart_flow_body(make_template(), make_template("Second"), frequency_cap_hours=16)
    )
    dora = customer("dora@example.com")
    post_event(api, "cart-4", dora)
    tick()
    time_passes(flow_id)
    tick()
    assert len(mail.outbox) == 1
    tick()
    time_passes(flow_id, seconds=25 * 3600)  # no order: the second email is due, 16 h cap still running

    tick()

    assert len(mail.outbox) == 1
    log = FlowStepLog.objects.get(run__customer=dora, step_id="again")
    assert log.recipient.status == "skipped"
    assert log.recipient.error.startswith("frequency cap")
    assert _run(flow_id, dora).status == "completed"
    stats = api.get(f"/api/flows/{flow_id}/stats").json()
    again = next(s for s in stats["steps"] if s["id"] == "again")
    assert (again["reached"], again["sent"], again["skipped"]) == (1, 0, 1)


def test_each_email_step_is_one_recipient_row_of_its_carrier(tenant, api):
    flow_id = make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))
    for i in range(3):
        post_event(api, f"cart-{i}", customer(f"c{i}@example.com"))
    tick()
    time_passes(flow_id)
    tick()
    tick()

    rows = CampaignRecipient.objects.filter(flow_step__flow_id=flow_id)
    assert rows.count() == 3 and {r.status for r in rows} == {"sent"}
    assert len(mail.outbox) == 3
    assert len({m.extra_headers["Message-ID"] for m in mail.outbox}) == 3
