"""python manage.py import_customers FILE.csv --tenant SLUG"""

import sys

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context
from tqdm import tqdm

from customers.importer import ImportFileError, import_customers_csv
from tenancy.models import Tenant
from tenancy.services import schema_for_slug


class Command(BaseCommand):
    help = (
        "Import customers from a UTF-8 CSV file into a tenant: upsert on email, columns mapped by header "
        "(email, external_id, first_name, last_name, phone, city, country, tags, email_marketing, "
        "email_transactional, unsubscribed_at, attributes, attributes.<key>). Bad rows are reported "
        "with their line number; the good rows are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the CSV file (UTF-8, header on the first line).")
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument(
            "--no-events",
            action="store_true",
            help="Emit no customer.created/updated events (an initial load that consumers already have).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar, even on a terminal.")

    def handle(self, *args, file, tenant, no_progress=False, no_events=False, **options):
        schema = schema_for_slug(tenant)
        if not Tenant.objects.serving().filter(schema_name=schema).exists():
            raise CommandError(f"There is no active tenant '{tenant}'.")
        bar = None
        if not no_progress and sys.stderr.isatty():
            bar = tqdm(total=0, unit="B", unit_scale=True, desc="import", file=sys.stderr)

        def progress(done, total, report):
            if bar is not None:
                bar.total = total
                bar.update(done - bar.n)
                bar.set_postfix(created=report.created, updated=report.updated, failed=report.failed)

        try:
            with schema_context(schema):
                report = import_customers_csv(path_or_file=file, progress=progress, emit_events=not no_events)
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}")
        except ImportFileError as error:
            raise CommandError(str(error))
        finally:
            if bar is not None:
                bar.close()
        for line, reason in report.errors:
            self.stderr.write(f"line {line}: {reason}")
        if report.failed > len(report.errors):
            self.stderr.write(f"... and {report.failed - len(report.errors)} more bad rows")
        if report.ignored_columns:
            self.stdout.write(f"ignored columns: {', '.join(report.ignored_columns)}")
        self.stdout.write(
            f"{report.rows} rows: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.duplicates} repeated emails (the later row won), "
            f"{report.failed} bad, in {report.seconds:.1f} s"
        )
