import io

import pytest
from django.core.management import CommandError, call_command

from customers import importer
from customers.importer import ImportFileError, import_customers_csv
from customers.models import Customer, CustomerTag, Tag
from events.models import OutboxEvent

from .conftest import events, make_customer


def write(tmp_path, text, name="customers.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def state():
    return (
        list(Customer.objects.order_by("id").values()),
        list(CustomerTag.objects.order_by("id").values()),
        list(Tag.objects.order_by("id").values()),
        OutboxEvent.objects.count(),
    )


GOOD = (
    "Email,First_Name,last_name,phone,city,country,tags,email_marketing,attributes.shoe_size,external_id\n"
    'Ann@Example.com,Ann,Smith,+3611,Győr,hu,"vip, new",yes,38,ws-1\n'
    "bob@example.com,Bob,,,,,,,,\n"
)


def test_it_imports_customers_with_tags_and_attributes(tmp_path, tenant, api):
    report = import_customers_csv(path_or_file=write(tmp_path, GOOD))
    assert (report.rows, report.created, report.updated, report.failed, report.errors) == (2, 2, 0, 0, [])
    ann = Customer.objects.get(email="ann@example.com")
    assert (ann.first_name, ann.last_name, ann.phone, ann.city, ann.country, ann.external_id) == (
        "Ann",
        "Smith",
        "+3611",
        "Győr",
        "HU",
        "ws-1",
    )
    assert (ann.email_marketing, ann.email_transactional, ann.attributes) == (True, True, {"shoe_size": "38"})
    assert sorted(ann.tags.values_list("name", flat=True)) == ["new", "vip"]
    bob = Customer.objects.get(email="bob@example.com")
    assert (bob.first_name, bob.country, bob.email_marketing, bob.external_id, bob.attributes) == (
        "Bob",
        "",
        False,
        None,
        {},
    )


def test_it_emits_events_with_exactly_the_api_representation(tmp_path, tenant, api):
    existing = make_customer(
        email="bob@example.com", first_name="Robert", addresses=[{"kind": "billing", "line1": "x"}]
    )
    OutboxEvent.objects.all().delete()
    import_customers_csv(path_or_file=write(tmp_path, GOOD))
    emitted = {data["id"]: (type_, data) for type_, data in events()}
    ann_id = Customer.objects.get(email="ann@example.com").pk
    assert emitted[ann_id] == ("customer.created", api.get(f"/api/customers/{ann_id}").json())
    assert emitted[existing.pk] == (
        "customer.updated",
        {**api.get(f"/api/customers/{existing.pk}").json(), "changed": ["first_name"]},
    )


def test_it_upserts_on_email_without_wiping_values_with_empty_cells(tmp_path, tenant):
    ann = make_customer(
        email="ann@example.com", first_name="Old", phone="999", tags=["old"], attributes={"a": 1}
    )
    report = import_customers_csv(path_or_file=write(tmp_path, GOOD))
    assert (report.created, report.updated, report.unchanged) == (1, 1, 0)
    ann.refresh_from_db()
    assert (ann.first_name, ann.phone, ann.attributes) == ("Ann", "+3611", {"a": 1, "shoe_size": "38"})
    assert sorted(ann.tags.values_list("name", flat=True)) == ["new", "old", "vip"]
    again = import_customers_csv(path_or_file=write(tmp_path, GOOD))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


def test_it_counts_a_new_tag_alone_as_an_update(tmp_path, tenant):
    make_customer(email="ann@example.com", tags=["vip"])
    report = import_customers_csv(
        path_or_file=write(tmp_path, "email,tags\nann@example.com,vip\nANN@example.com,gold\n")
    )
    assert (report.updated, report.unchanged, report.duplicates) == (1, 0, 1)
    assert events("customer.updated")[-1][1]["changed"] == ["tags"]
    assert events("customer.updated")[-1][1]["tags"] == ["gold", "vip"]


def test_it_merges_repeated_emails_in_order(tmp_path, tenant):
    text = "email,first_name,city\nann@example.com,Ann,Pécs\nANN@example.com,Anna,\n"
    report = import_customers_csv(path_or_file=write(tmp_path, text))
    assert (report.rows, report.created, report.duplicates) == (2, 1, 1)
    ann = Customer.objects.get(email="ann@example.com")
    assert (ann.first_name, ann.city) == ("Anna", "Pécs")


def test_it_gives_the_same_result_across_chunks(tmp_path, tenant):
    text = (
        "email,first_name,city\n"
        + "".join(f"c{i}@example.com,N{i},\n" for i in range(7))
        + "c1@example.com,Again,Eger\n"
    )
    report = import_customers_csv(path_or_file=write(tmp_path, text), chunk_rows=3)
    assert (report.rows, report.created, report.updated) == (8, 7, 1)
    c1 = Customer.objects.get(email="c1@example.com")
    assert (c1.first_name, c1.city) == ("Again", "Eger")


BAD = (
    b"email,first_name,country,email_marketing,external_id,unsubscribed_at\n"  # line 1
    b"good@example.com,Good,HU,true,,\n"  # 2
    b"not-an-email,X,,,,\n"  # 3
    b'c@example.com,"broken"quote,,,,\n'  # 4
    b"d@example.com,D,XX,,,\n"  # 5
    b"e@example.com,E,,maybe,,\n"  # 6
    b'f@example.com,"unclosed,,,,\n'  # 7
    b"g@example.com,G,,,\n"  # 8
    b"h@example.com,J\xe9r\xf4me,,,,\n"  # 9 (Latin-1)
    b"i@example.com,I\x00,,,,\n"  # 10
    b",NoEmail,,,,\n"  # 11
    b"k@example.com,K,,,taken,\n"  # 12
    b"l@example.com,L,,,,yesterday\n"  # 13
    b"m@example.com,M,,,,2024-01-01\n"  # 14
    b"\n"  # 15 (blank)
    b"last@example.com,Last,de,no,,2024-05-01T10:00:00Z\n"  # 16
)


def test_it_reports_bad_rows_with_line_and_reason_and_keeps_the_good_ones(tmp_path, tenant):
    make_customer(email="owner@example.com", external_id="taken")
    report = import_customers_csv(path_or_file=write(tmp_path, BAD))
    assert report.errors == [
        (3, "email 'not-an-email' is not a valid address"),
        (4, "broken CSV quoting (',' expected after '\"')"),
        (5, "country 'XX' is not an ISO 3166-1 alpha-2 code"),
        (6, "email_marketing 'maybe' is not true or false"),
        (7, "a quoted field is not closed on this line"),
        (8, "expected 6 columns, found 5"),
        (9, "not UTF-8 (byte 0xe9 at position 16); save the file as UTF-8"),
        (10, "contains a NUL character"),
        (11, "email is missing"),
        (12, "external_id 'taken' belongs to another customer"),
        (13, "unsubscribed_at 'yesterday' is not an ISO 8601 date-time"),
        (14, "unsubscribed_at '2024-01-01' needs a UTC offset (e.g. Z or +01:00)"),
    ]
    assert (report.created, report.failed) == (2, 12)
    assert sorted(Customer.objects.values_list("email", flat=True)) == [
        "good@example.com",
        "last@example.com",
        "owner@example.com",
    ]
    last = Customer.objects.get(email="last@example.com")
    assert (last.country, last.email_marketing, last.unsubscribed_at.isoformat()) == (
        "DE",
        False,
        "2024-05-01T10:00:00+00:00",
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "The file is empty: the first line must name the columns."),
        (
            "first_name,last_name\nAnn,Smith\n",
            "The file has no 'email' column (the header is its first line).",
        ),
        ("email,colour,size\na@example.com,red,1\n", "Unknown column(s): colour, size."),
        ("email,Email\na@example.com,b@example.com\n", "Repeated column(s): email."),
        (b"email,n\xe9v\na@example.com,x\n", "The header (line 1) cannot be read: not UTF-8"),
    ],
)
def test_it_refuses_a_file_it_cannot_map_and_writes_nothing(tmp_path, tenant, text, message):
    make_customer(email="a@example.com", first_name="Keep")
    before = state()
    with pytest.raises(ImportFileError) as error:
        import_customers_csv(path_or_file=write(tmp_path, text))
    assert str(error.value).startswith(message)
    assert state() == before


def test_it_imports_back_its_own_export(tmp_path, tenant, api):
    make_customer(
        email="ann@example.com", first_name="Ann", tags=["vip"], attributes={"k": "v"}, country="HU"
    )
    exported = b"".join(api.get("/api/customers?format=csv").streaming_content)
    Customer.objects.filter(email="ann@example.com").update(first_name="Changed")
    report = import_customers_csv(path_or_file=io.BytesIO(exported))
    assert (report.updated, report.failed) == (1, 0)
    assert sorted(report.ignored_columns) == sorted(
        ["id", "total_spent", "order_count", "first_order_at", "last_order_at", "created_at", "updated_at"]
    )
    assert Customer.objects.get(email="ann@example.com").first_name == "Ann"


def test_it_imports_from_the_command_line_and_prints_a_report(tmp_path, tenant, capsys):
    path = write(tmp_path, "email,first_name\nann@example.com,Ann\nbad,Bad\n")
    call_command("import_customers", str(path), tenant="tenant-a")
    out, err = capsys.readouterr()
    assert "2 rows: 1 created, 0 updated, 0 unchanged, 0 repeated emails (the later row won), 1 bad" in out
    assert "line 3: email 'bad' is not a valid address" in err
    assert Customer.objects.filter(email="ann@example.com").exists()


def test_it_refuses_unknown_tenants_files_and_columns_on_the_command_line(tmp_path, tenant):
    before = state()
    with pytest.raises(CommandError, match="There is no active tenant 'nope'"):
        call_command("import_customers", str(write(tmp_path, GOOD)), tenant="nope")
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_customers", str(tmp_path / "missing.csv"), tenant="tenant-a")
    with pytest.raises(CommandError, match="Unknown column"):
        call_command("import_customers", str(write(tmp_path, "email,x\n")), tenant="tenant-a")
    assert state() == before


def test_it_can_import_without_events(tmp_path, tenant, capsys):
    make_customer(email="bob@example.com")
    before = OutboxEvent.objects.count()
    path = write(tmp_path, GOOD)
    call_command("import_customers", str(path), tenant="tenant-a", no_events=True)
    assert "2 rows: 1 created, 1 updated, 0 unchanged" in capsys.readouterr().out
    assert OutboxEvent.objects.count() == before
    assert sorted(Customer.objects.get(email="ann@example.com").tags.values_list("name", flat=True)) == [
        "new",
        "vip",
    ]


def test_it_reports_rows_a_concurrent_writer_took_and_keeps_the_others(tmp_path, tenant, monkeypatch):
    original = importer._Importer._update_existing

    def then_someone_else_writes(self, cursor):
        original(self, cursor)
        # Committed by another request between our steps, as far as this chunk can tell.
        Customer.objects.create(email="b@example.com", first_name="Theirs")

    monkeypatch.setattr(importer._Importer, "_update_existing", then_someone_else_writes)
    text = "email,first_name,tags\na@example.com,A,vip\nb@example.com,B,vip\nc@example.com,C,\n"
    report = import_customers_csv(path_or_file=write(tmp_path, text))

    assert (report.created, report.failed) == (2, 1)
    assert report.errors == [
        (3, "conflicts with a customer written during the import; import this row again")
    ]
    assert dict(Customer.objects.values_list("email", "first_name")) == {
        "a@example.com": "A",
        "b@example.com": "Theirs",
        "c@example.com": "C",
    }
    tagged = CustomerTag.objects.filter(tag__name="vip").values_list("customer__email", flat=True)
    assert sorted(tagged) == ["a@example.com"]


ADDRESSES = [
    ("anna@bücher.de", True),  # an international domain
    ("anna@xn--bcher-kva.de", True),
    ("o'brien+news@example.co.uk", True),
    ("a..b@example.com", False),
    (".anna@example.com", False),
    ("anna@example", False),
    ("anna@@example.com", False),
    ("ánna@example.com", False),
]


def test_it_accepts_exactly_the_addresses_the_api_accepts(tmp_path, tenant, api):
    """One email rule (core.values) for the import and the API."""
    for address, valid in ADDRESSES:
        response = api.post("/api/customers", {"email": address.upper()}, format="json")
        assert response.status_code == (201 if valid else 400), (address, response.content)
        if not valid:
            assert list(response.json()) == ["email"], address
    created = set(Customer.objects.values_list("email", flat=True))
    assert created == {address for address, valid in ADDRESSES if valid}
    Customer.objects.all().delete()

    text = "email\n" + "\n".join(address for address, _ in ADDRESSES) + "\n"
    report = import_customers_csv(path_or_file=write(tmp_path, text))
    assert set(Customer.objects.values_list("email", flat=True)) == created
    assert report.failed == sum(1 for _, valid in ADDRESSES if not valid)
