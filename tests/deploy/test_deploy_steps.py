"""The deploy step `migrate` leaves a fresh database able to serve its public (operators') host."""

import io

from django.core.management import call_command
from django.db import connection

from tenancy.models import Domain, Tenant


def test_migrate_makes_the_public_tenant_for_public_domain_when_it_is_missing(db, settings):
    connection.set_schema_to_public()
    Domain.objects.filter(tenant__schema_name="public").delete()
    Tenant.objects.filter(schema_name="public").delete()

    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())

    connection.set_schema_to_public()
    public = Tenant.objects.get(schema_name="public")
    assert list(public.domains.values_list("domain", "is_primary")) == [(settings.PUBLIC_DOMAIN, True)]


def test_migrate_leaves_an_existing_public_tenant_as_it_is(db):
    connection.set_schema_to_public()
    before = list(Tenant.objects.filter(schema_name="public").values_list("pk", "name", "webshop_secret"))
    domains = list(Domain.objects.filter(tenant__schema_name="public").values_list("pk", "domain"))

    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())

    connection.set_schema_to_public()
    assert (
        list(Tenant.objects.filter(schema_name="public").values_list("pk", "name", "webshop_secret"))
        == before
    )
    assert list(Domain.objects.filter(tenant__schema_name="public").values_list("pk", "domain")) == domains
