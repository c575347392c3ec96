import filecmp
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_context

from tenancy.models import Tenant


def test_it_round_trips_a_tenant_exactly(tenant, tmp_path):
    from customers.models import Customer, Tag

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
