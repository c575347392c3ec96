import filecmp
import json
import os
import stat
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.lifecycle import DISPATCH_WORK
from campaigns.models import Campaign
from customers.models import Customer, Tag
from tenancy.models import Tenant
from tenancy.work import work_pending


def test_it_round_trips_a_tenant_exactly(tenant, tmp_path):
    vip = Tag.objects.create(name="vip")
    customer = Customer.objects.create(
        email="round@trip.example", first_name="Łukasz", city="Győr", attributes={"a": [1, 'x,y\n"z"']}
    )
    customer.tags.add(vip)
    connection.set_schema_to_public()
    call_command("export_tenant", "tenant-a", str(tmp_path / "a"))
    call_command(
        "import_tenant", str(tmp_path / "a"), "--slug", "copy-of-a", "--domain", "copy-of-a.localhost"
    )
    call_command("export_tenant", "copy-of-a", str(tmp_path / "b"))

    manifest_a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    manifest_b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest_a["tables"] == manifest_b["tables"]
    assert manifest_a["migrations"] == manifest_b["migrations"]
    for table in manifest_a["tables"]:
        assert filecmp.cmp(tmp_path / "a" / f"{table}.csv", tmp_path / "b" / f"{table}.csv", shallow=False), (
            table
        )

    with schema_context("copy_of_a"):
        copy = Customer.objects.get(email="round@trip.example")
        assert copy.pk == customer.pk and copy.city == "Győr" and copy.attributes == customer.attributes
        assert list(copy.tags.values_list("name", flat=True)) == ["vip"]
        # New rows continue after the imported ids.
        assert Customer.objects.create(email="new@trip.example").pk > customer.pk


def test_it_refuses_a_directory_without_a_manifest_and_creates_nothing(db, tmp_path):
    with pytest.raises(CommandError, match="manifest"):
        call_command("import_tenant", str(tmp_path), "--slug", "nothing", "--domain", "nothing.localhost")
    assert not Tenant.objects.filter(schema_name="nothing").exists()


def test_it_refuses_an_unknown_tenant_on_export(db, tmp_path):
    with pytest.raises(CommandError, match="No tenant"):
        call_command("export_tenant", "no-such", str(tmp_path))


def _exported(tmp_path):
    connection.set_schema_to_public()
    call_command("export_tenant", "tenant-a", str(tmp_path / "a"))
    return tmp_path / "a", json.loads((tmp_path / "a" / "manifest.json").read_text())


def _import_refused(directory, manifest, match):
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match=match):
        call_command(
            "import_tenant", str(directory), "--slug", "evil-copy", "--domain", "evil-copy.localhost"
        )
    connection.set_schema_to_public()
    assert not Tenant.objects.filter(schema_name="evil_copy").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'evil_copy'")
        assert cursor.fetchone() is None


def test_it_refuses_a_column_that_would_turn_copy_into_a_program_and_runs_nothing(tenant, tmp_path):
    directory, manifest = _exported(tmp_path)
    # The server writes this file (as its own OS user) if the program ever runs.
    proof = Path(tempfile.gettempdir()) / f"crm-import-proof-{uuid.uuid4().hex}"
    columns = manifest["tables"]["customers_tag"]["columns"]
    columns[0] = f"id\") FROM PROGRAM 'touch {proof}' WITH (FORMAT csv) --"

    _import_refused(directory, manifest, match="unknown columns of customers_tag")

    assert not proof.exists()


@pytest.mark.parametrize(
    "table",
    [
        "tenancy_tenant",
        "public.tenancy_tenant",
        'customers_tag" CASCADE; --',
        "../../../etc/passwd",
        "pg_authid",
    ],
)
def test_it_refuses_a_table_outside_the_tenant_schema(tenant, tmp_path, table):
    directory, manifest = _exported(tmp_path)
    manifest["tables"][table] = {"columns": ["id"]}

    _import_refused(directory, manifest, match="unknown table")


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["tables"]["customers_tag"].update(columns=["id", "id", "name"]),
        lambda m: m["tables"]["customers_tag"].update(columns="id, name"),
        lambda m: m["tables"]["customers_tag"].update(columns=[1, "name"]),
        lambda m: m.update(tables=["customers_tag"]),
    ],
)
def test_it_refuses_a_malformed_manifest_with_a_clear_error(tenant, tmp_path, change):
    directory, manifest = _exported(tmp_path)
    change(manifest)

    _import_refused(directory, manifest, match="manifest")


def test_it_writes_exports_readable_by_their_owner_only(tenant, tmp_path):
    previous = os.umask(0o022)  # a usual umask, which would leave the files world-readable
    try:
        directory, manifest = _exported(tmp_path)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(directory.iterdir())
    assert len(files) == len(manifest["tables"]) + 1
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {
        path.name: 0o600 for path in files
    }


def test_it_makes_an_existing_export_directory_and_files_private_again(tenant, tmp_path):
    directory = tmp_path / "a"
    directory.mkdir(mode=0o755)
    (directory / "customers_customer.csv").write_text("stale")
    (directory / "customers_customer.csv").chmod(0o644)

    _exported(tmp_path)

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "customers_customer.csv").stat().st_mode) == 0o600


def test_it_refuses_a_file_that_does_not_load_with_the_table_named(tenant, tmp_path):
    directory, manifest = _exported(tmp_path)
    (directory / "customers_tag.csv").write_text("id,name\nnot-a-number,vip\n")

    _import_refused(directory, manifest, match=r"customers_tag\.csv could not be loaded: .*not-a-number")


def test_it_marks_the_imported_tenants_periodic_work_at_once(tenant, tmp_path):
    start = timezone.now() + timedelta(hours=2)
    Campaign.objects.create(
        name="Later", subject="Hi", html_body="<p>Hi</p>", status="scheduled", scheduled_at=start
    )
    connection.set_schema_to_public()
    call_command("export_tenant", "tenant-a", str(tmp_path / "a"))
    call_command(
        "import_tenant", str(tmp_path / "a"), "--slug", "copy-of-a", "--domain", "copy-of-a.localhost"
    )
    assert work_pending(tenant="copy_of_a") == {DISPATCH_WORK: start}  # not at the next hourly sweep
