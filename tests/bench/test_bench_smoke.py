"""The benchmark harness at small scale: it runs, every count adds up, it cleans up. Never timings."""

import pytest
from django.db import connection

from bench import data, runner
from bench.__main__ import main
from bench.core import Check, GrowthPoint, Row, growth_exponent, growth_verdict, percentile
from tenancy.models import Tenant

PREFIX = "bsmoke"
SIZES = [1_000, 3_000]
CHEAP_ROWS = [1, 2, 3, 6, 8, 12]


def _scratch_schemas():
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [f"{PREFIX}\\_%"])
        return [row[0] for row in cursor.fetchall()]


def _scratch_tenants():
    return list(
        Tenant.objects.filter(schema_name__startswith=f"{PREFIX}_").values_list("schema_name", flat=True)
    )


@pytest.fixture(scope="module")
def smoke(django_db_setup, django_db_blocker, tmp_path_factory):
    """One small run of the cheap rows (committed data in scratch tenants the run drops itself)."""
    out = tmp_path_factory.mktemp("bench-results")
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        report = runner.run(
            scale="small",
            only=CHEAP_ROWS,
            sizes=SIZES,
            out_dir=out,
            prefix=PREFIX,
            verbose=False,
            work_dir=tmp_path_factory.mktemp("bench-work"),
        )
        connection.set_schema_to_public()
        leftovers = (_scratch_tenants(), _scratch_schemas())
    return report, out, leftovers


def test_it_runs_every_cheap_row_with_a_verdict(smoke):
    report, _, _ = smoke
    keys = [row.key for row in report.rows]
    assert keys == ["1", "2", "3", "6a", "6b", "6c", "8", "12"]
    assert {row.key: row.status for row in report.rows if row.status not in ("pass", "short")} == {}
    assert all(row.ours is not None and row.baseline is not None for row in report.rows)


def test_it_makes_every_count_add_up(smoke):
    report, _, _ = smoke
    broken = [(row.key, check) for row in report.rows for check in row.checks if not check.ok]
    assert broken == []
    by_key = {row.key: row for row in report.rows}
    assert {check.name: check.got for check in by_key["1"].checks} == {
        "rows read": 3_000,
        "customers created": 3_000,
        "rows failed": 0,
        "customers in the table": 3_000,
        "rows copied by the baseline": 3_000,
    }
    recipients = {check.name: check.got for check in by_key["8"].checks}["recipients"]
    assert recipients == 3_000  # one per generated customer (all have an address)


def test_it_measures_growth_at_every_size(smoke):
    report, _, _ = smoke
    sizes = {}
    for point in report.growth:
        sizes.setdefault(point.workload.split(" ")[0], set()).add(point.size)
    assert sizes == {"1": set(SIZES), "2": set(SIZES), "3": set(SIZES), "6": set(SIZES)}
    imports = [point for point in report.growth if point.workload.startswith("1")]
    assert all(point.peak_rss_mb and point.peak_rss_mb > 0 for point in imports)


def test_it_writes_the_table_and_the_chart(smoke):
    _, out, _ = smoke
    text = (out / "latest.md").read_text()
    assert "| # | workload | ours | baseline | ratio | target | result |" in text
    for key in ("1", "2", "3", "6a", "6b", "6c", "8"):
        assert f"\n| {key} | " in text
    assert "PostgreSQL" in text and "cores" in text
    assert (out / "growth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_it_drops_its_scratch_tenants(smoke):
    _, _, (tenants, schemas) = smoke
    assert tenants == []
    assert schemas == []


def test_it_refuses_an_unknown_scale_and_creates_nothing(django_db_setup, django_db_blocker, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--scale", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        assert _scratch_tenants() == []


def test_it_marks_a_row_whose_counts_disagree_as_an_error():
    row = Row(key="2", workload="w", unit="ms", ours=1.0, baseline=1.0, rule=lambda o, b, r: True)
    row.checks = [Check("API count = SQL count", 10, 11)]
    assert row.decide().status == "error"
    assert row.note == "counts do not add up: API count = SQL count: 10 != 11"


def test_it_reads_ratios_against_the_target():
    faster = Row(key="1", workload="w", ours=70.0, baseline=100.0, rule=lambda o, b, r: r >= 0.6).decide()
    slower = Row(key="1", workload="w", ours=50.0, baseline=100.0, rule=lambda o, b, r: r >= 0.6).decide()
    assert (faster.status, faster.ratio, slower.status) == ("pass", 0.7, "short")


def test_it_computes_p95_and_the_growth_exponent():
    assert percentile(list(range(1, 21)), 0.95) == 19
    linear = [GrowthPoint("x", 10_000, 1.0), GrowthPoint("x", 100_000, 10.0)]
    flat = [GrowthPoint("x", 10_000, 1.0), GrowthPoint("x", 100_000, 1.0)]
    assert round(growth_exponent(linear), 6) == 1.0
    assert (growth_verdict(growth_exponent(linear)), growth_verdict(growth_exponent(flat))) == (
        "linear",
        "sub-linear",
    )


def test_it_reuses_the_data_tenant_a_kept_run_left(django_db_setup, django_db_blocker, tmp_path_factory):
    """`--keep` then `--reuse`: the second run measures on the first one's data tenant (its customers
    and row 8's campaign are not made again)."""
    prefix = "breuse"

    def once(**options):
        report = runner.run(
            scale="small",
            only=[8],
            sizes=[1_000],
            out_dir=None,
            prefix=prefix,
            verbose=False,
            work_dir=tmp_path_factory.mktemp("bench-reuse"),
            **options,
        )
        connection.set_schema_to_public()
        row = report.rows[0]
        assert row.status in ("pass", "short") and all(check.ok for check in row.checks), row.note
        return {check.name: check.got for check in row.checks}["recipients"]

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        try:
            assert once(keep=True) == 1_000
            kept = Tenant.objects.get(schema_name=f"{prefix}_data").pk
            assert once(reuse=True, keep=True) == 1_000
            assert Tenant.objects.get(schema_name=f"{prefix}_data").pk == kept
            assert data.customers_count(f"{prefix}_data") == 1_000
        finally:
            data.scratch_tenants_drop(prefix=prefix)
