from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from customers.attribution import attribution_rebuild
from tenancy.models import Tenant
from tenancy.services import schema_for_slug


class Command(BaseCommand):
    help = (
        "Recompute the revenue attribution of every order of a tenant with its current windows "
        "(after a change of attribution_click_days or attribution_open_days)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(
            schema_name=schema_for_slug(options["tenant"]), is_template=False
        ).first()
        if tenant is None or tenant.schema_name == "public":
            raise CommandError(f"No tenant '{options['tenant']}'.")
        connection.set_tenant(tenant)
        try:
            with transaction.atomic():
                result = attribution_rebuild()
        finally:
            connection.set_schema_to_public()
        self.stdout.write(
            f"{tenant.schema_name}: {result['orders']} orders, {result['attributed']} attributed "
            f"({result['changed']} written, {result['removed']} removed)"
        )
