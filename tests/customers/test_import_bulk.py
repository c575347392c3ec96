"""A first load (a large file into a tenant without customers): the customer table's secondary
indexes are built once at the end instead of row by row, inside one transaction."""

import pytest
from django.db import connection

from customers import importer
from customers.importer import import_customers_csv
from customers.models import Customer

from .conftest import make_customer


def _indexes():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'customers_customer' ORDER BY indexname"
        )
        return cursor.fetchall()


def _csv(tmp_path, n, start=0):
    path = tmp_path / "customers.csv"
    rows = "".join(
        f"c{i}@example.com,Name{i},Kovács,+3630{i:07d},Győr,HU,vip\n" for i in range(start, start + n)
    )
    path.write_text("email,first_name,last_name,phone,city,country,tags\n" + rows, encoding="utf-8")
    return path


@pytest.fixture
def small_first_loads(monkeypatch):
    monkeypatch.setattr(importer, "BULK_LOAD_MIN_BYTES", 0)


def test_it_builds_the_secondary_indexes_once_and_leaves_them_as_they_were(
    tmp_path, tenant, api, small_first_loads
):
    before = _indexes()
    assert any("gin_trgm_ops" in definition for _, definition in before)

    report = import_customers_csv(path_or_file=_csv(tmp_path, 300), chunk_rows=100)

    assert report.bulk_load is True
    assert (report.created, report.failed) == (300, 0)
    assert _indexes() == before
    assert Customer.objects.count() == 300
    found = api.get("/api/customers", {"search": "c123@"}).json()
    assert [row["email"] for row in found["results"]] == ["c123@example.com"]
    assert found["results"][0]["tags"] == ["vip"]


def test_it_loads_row_by_row_into_a_tenant_that_has_customers(tmp_path, tenant, small_first_loads):
    make_customer(email="old@example.com")
    report = import_customers_csv(path_or_file=_csv(tmp_path, 50))
    assert report.bulk_load is False
    assert Customer.objects.count() == 51


def test_a_small_file_is_no_first_load(tmp_path, tenant):
    report = import_customers_csv(path_or_file=_csv(tmp_path, 50))
    assert report.bulk_load is False and report.created == 50


def test_a_first_load_that_fails_writes_nothing_and_keeps_every_index(
    tmp_path, tenant, small_first_loads, monkeypatch
):
    before = _indexes()
    original = importer._Importer._process_chunk
    calls = []

    def fail_on_the_third_chunk(self, cursor):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        original(self, cursor)

    monkeypatch.setattr(importer._Importer, "_process_chunk", fail_on_the_third_chunk)
    with pytest.raises(RuntimeError):
        import_customers_csv(path_or_file=_csv(tmp_path, 300), chunk_rows=100)

    assert Customer.objects.count() == 0
    assert _indexes() == before


def test_a_first_load_reports_progress_after_every_chunk(tmp_path, tenant, small_first_loads):
    seen = []
    import_customers_csv(
        path_or_file=_csv(tmp_path, 250),
        chunk_rows=100,
        progress=lambda done, total, report: seen.append((done <= total, report.created)),
    )
    assert seen == [(True, 100), (True, 200), (True, 250)]
