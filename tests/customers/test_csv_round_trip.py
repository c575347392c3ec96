"""The CSV export guards only what a spreadsheet would execute, and an export imports back unchanged."""

import csv
import io
import random

import pytest
from django_tenants.utils import schema_context

from customers.importer import import_customers_csv
from customers.models import Customer
from customers.spreadsheet import guard, unguard

from .conftest import make_customer


@pytest.mark.parametrize(
    "value, cell",
    [
        ("+36 1 234 5678", "+36 1 234 5678"),
        ("+1 (555) 010-9999", "+1 (555) 010-9999"),
        ("-12.50", "-12.50"),
        ("-1,5", "-1,5"),
        ("+", "+"),
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+A1", "'+A1"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("+36 1 234 5678 ext 9", "'+36 1 234 5678 ext 9"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'t Hooft", "'t Hooft"),
        ("'=x", "''=x"),
        ("''=x", "'''=x"),
        ("Ann", "Ann"),
        ("", ""),
    ],
)
def test_it_guards_only_what_a_spreadsheet_would_execute(value, cell):
    assert guard(value) == cell
    assert unguard(cell) == value


def test_it_reads_back_every_value_it_guards():
    alphabet = "=+-@'\t\r 0123456789.,()/aA😀"
    rng = random.Random(7)
    for _ in range(20000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        assert unguard(guard(value)) == value, repr(value)


TRICKY = [
    {
        "email": "phone@example.com",
        "external_id": "-42",
        "first_name": "Ann",
        "last_name": "Smith, Jr.",
        "phone": "+36 30 123 4567",
        "city": "Łódź 😀",
        "country": "PL",
        "tags": ["=evil", "vip", "ünï"],
        "attributes": {"note": "line one\nline two", "n": -3, "formula": "=1+1", "quote": 'say "hi"'},
        "email_marketing": True,
    },
    {
        "email": "formula@example.com",
        "external_id": '=HYPERLINK("http://evil")',
        "first_name": "=cmd|' /C calc'!A0",
        "last_name": "'t Hooft",
        "phone": "-1",
        "city": "@SUM(A1)",
        "tags": ["+A1"],
        "email_transactional": False,
        "unsubscribed_at": "2026-02-03T04:05:06+00:00",
    },
    {
        "email": "lines@example.com",
        "first_name": "Multi\nline",
        "last_name": 'O"Brien, "the" third',
        "phone": "+1 (555) 010-9999",
        "city": "'=x",
        "attributes": {"nested": {"list": [1, "two", {"three": "3,\n3"}]}, "empty": ""},
    },
]
COMPARED = [
    "email",
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "city",
    "country",
    "tags",
    "attributes",
    "email_marketing",
    "email_transactional",
    "unsubscribed_at",
]


def _as_api_returns(api_client, emails):
    found = {}
    for customer in api_client.get("/api/customers", {"page_size": 500}).json()["results"]:
        if customer["email"] in emails:
            found[customer["email"]] = {field: customer[field] for field in COMPARED}
    return found


def test_it_imports_an_export_back_without_losing_anything(api, api_b, other_tenant, tmp_path):
    for fields in TRICKY:
        make_customer(**fields)
    emails = {fields["email"] for fields in TRICKY}
    exported = b"".join(api.get("/api/customers?format=csv").streaming_content)
    rows = list(csv.DictReader(io.StringIO(exported.decode())))
    assert {row["phone"] for row in rows} >= {"+36 30 123 4567", "-1", "+1 (555) 010-9999"}
    assert {row["first_name"] for row in rows} >= {"'=cmd|' /C calc'!A0", "Multi\nline"}
    path = tmp_path / "export.csv"
    path.write_bytes(exported)

    with schema_context(other_tenant.schema_name):
        report = import_customers_csv(path_or_file=path)
        assert (report.created, report.failed, report.errors) == (len(TRICKY), 0, [])
        assert Customer.objects.filter(email__in=emails).count() == len(TRICKY)

    assert _as_api_returns(api_b, emails) == _as_api_returns(api, emails)


def test_it_imports_quoted_cells_with_line_breaks_and_keeps_a_stray_quote_to_its_line(tmp_path, tenant):
    """A record may span lines (a quoted cell with a line break, as the export writes it); a quote
    left open costs its own line only: the lines it swallowed are read again."""
    path = tmp_path / "c.csv"
    path.write_bytes(
        b"email,first_name,city\n"  # 1
        b'a@example.com,"Two\nlines",Pest\n'  # 2-3
        b'b@example.com,"unclosed,Buda\n'  # 4: its quote swallows what follows, then gives it back
        b"c@example.com,C,Eger\n"  # 5
        b'd@example.com,D,"Gy\xc5\x91r"\n'  # 6
    )

    report = import_customers_csv(path_or_file=path)

    # The stray quote of line 4 "closes" at the first quote of line 6: a record with a broken cell.
    assert report.errors == [(4, "broken CSV quoting (',' expected after '\"')")]
    assert dict(Customer.objects.values_list("email", "first_name")) == {
        "a@example.com": "Two\nlines",
        "c@example.com": "C",
        "d@example.com": "D",
    }
    assert Customer.objects.get(email="d@example.com").city == "Győr"


def test_it_reports_a_quote_left_open_to_the_end_of_the_file_and_keeps_the_rest(tmp_path, tenant):
    path = tmp_path / "c.csv"
    path.write_bytes(b'email,first_name\na@example.com,"open\nb@example.com,B\nc@example.com,C\n')

    report = import_customers_csv(path_or_file=path)

    assert report.errors == [(2, "a quoted field is not closed on this line")]
    assert sorted(Customer.objects.values_list("email", flat=True)) == ["b@example.com", "c@example.com"]


def test_it_imports_an_empty_attributes_cell_as_no_attributes(tmp_path, tenant):
    path = tmp_path / "c.csv"
    path.write_bytes(b'email,attributes\na@example.com,\nb@example.com,"{""k"": 1}"\n')

    report = import_customers_csv(path_or_file=path)

    assert (report.created, report.errors) == (2, [])
    assert dict(Customer.objects.values_list("email", "attributes")) == {
        "a@example.com": {},
        "b@example.com": {"k": 1},
    }
