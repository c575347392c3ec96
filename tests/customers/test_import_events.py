"""The import's customer.created / customer.updated events: compact batch rows in the import's
transaction, one event per customer when published, with ids that stay the same on every publish."""

from customers.importer import import_customers_csv
from customers.models import Customer
from customers.outbox import BATCH_TYPE
from customers.services import customer_erase
from events.contracts import event_errors
from events.models import OutboxEvent

from .conftest import events, make_customer


def write(tmp_path, lines):
    path = tmp_path / "customers.csv"
    path.write_text("email,first_name\n" + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_it_writes_one_outbox_row_per_thousand_changed_customers(tmp_path, tenant):
    OutboxEvent.objects.all().delete()
    import_customers_csv(path_or_file=write(tmp_path, [f"c{n}@example.com,N{n}" for n in range(2500)]))

    rows = list(OutboxEvent.objects.order_by("id"))
    assert [(row.type, len(row.data["ids"])) for row in rows] == [
        (BATCH_TYPE, 1000),
        (BATCH_TYPE, 1000),
        (BATCH_TYPE, 500),
    ]
    assert {row.tenant for row in rows} == {"tenant_a"}
    ids = list(Customer.objects.order_by("id").values_list("id", flat=True))
    emitted = events()
    assert [data["id"] for _, data in emitted] == ids  # in order, every customer once
    assert {type_ for type_, _ in emitted} == {"customer.created"}


def test_each_event_keeps_its_id_whenever_the_row_is_published(tmp_path, tenant):
    OutboxEvent.objects.all().delete()
    import_customers_csv(path_or_file=write(tmp_path, ["a@example.com,A", "b@example.com,B"]))
    [row] = OutboxEvent.objects.all()

    first, again = row.envelopes(), OutboxEvent.objects.get(pk=row.pk).envelopes()

    assert [e["id"] for e in first] == [e["id"] for e in again]
    assert len({e["id"] for e in first}) == 2 and str(row.event_id) not in {e["id"] for e in first}
    assert {e["occurred_at"] for e in first} == {row.occurred_at.isoformat()}


def test_an_update_names_the_changed_fields(tmp_path, tenant):
    existing = make_customer(email="a@example.com", first_name="Old")
    OutboxEvent.objects.all().delete()
    import_customers_csv(path_or_file=write(tmp_path, ["a@example.com,New", "b@example.com,B"]))

    emitted = {data["id"]: (type_, data) for type_, data in events()}
    assert emitted[existing.pk][0] == "customer.updated"
    assert emitted[existing.pk][1]["changed"] == ["first_name"]
    assert emitted[existing.pk][1]["first_name"] == "New"
    assert "changed" not in next(data for type_, data in emitted.values() if type_ == "customer.created")


def test_a_customer_erased_before_publishing_goes_out_without_personal_data(tmp_path, tenant):
    OutboxEvent.objects.all().delete()
    import_customers_csv(path_or_file=write(tmp_path, ["a@example.com,Ann", "b@example.com,Bob"]))
    ann = Customer.objects.get(email="a@example.com")

    customer_erase(customer=ann)

    batch = OutboxEvent.objects.get(type=BATCH_TYPE)
    rendered = {e["data"]["id"]: e["data"] for e in batch.envelopes()}
    assert rendered[ann.pk] == {"id": ann.pk, "erased": True}
    assert "a@example.com" not in str(batch.data) and "Ann" not in str(batch.data)
    assert rendered[Customer.objects.get(email="b@example.com").pk]["first_name"] == "Bob"


def test_an_import_without_changes_writes_no_row(tmp_path, tenant):
    import_customers_csv(path_or_file=write(tmp_path, ["a@example.com,A"]))
    OutboxEvent.objects.all().delete()
    import_customers_csv(path_or_file=write(tmp_path, ["a@example.com,A"]))
    assert OutboxEvent.objects.count() == 0


def test_the_rendered_events_match_the_published_contract(tmp_path, tenant):
    make_customer(email="a@example.com", first_name="Old", tags=["vip"])
    OutboxEvent.objects.all().delete()
    import_customers_csv(path_or_file=write(tmp_path, ["a@example.com,New", "b@example.com,B"]))

    envelopes = [e for row in OutboxEvent.objects.all() for e in row.envelopes()]
    assert sorted(e["type"] for e in envelopes) == ["customer.created", "customer.updated"]
    assert [event_errors(e) for e in envelopes] == [[], []]
