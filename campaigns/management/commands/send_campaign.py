"""Send a campaign synchronously, in K processes, without Celery (benchmarks, operations).

    python manage.py send_campaign <campaign id> --schema <tenant schema> [--workers K]
        [--host H --port P] [--batch-size N] [--start]

Each worker process claims batches exactly as the Celery tasks do (same sender, same leases, same
rate limit), so it can run next to Celery workers without sending anyone twice.
"""

import multiprocessing
import queue
import resource
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django_tenants.utils import tenant_context

from campaigns import lifecycle, sender
from campaigns.models import Campaign, CampaignRecipient
from tenancy.models import Tenant


def _worker(tenant, campaign_id, overrides, batch_size, results):
    connections.close_all()  # never share the parent's database socket
    try:
        with tenant_context(tenant):
            outcome = sender.run_until_done(
                campaign_id=campaign_id, mail_overrides=overrides, batch_size=batch_size
            )
        results.put((outcome.sent, outcome.failed, ""))
    except BaseException as error:  # the parent reports it; a dead child must not hang the parent
        results.put((0, 0, f"{type(error).__name__}: {error}"))
        raise
    finally:
        connections.close_all()


class Command(BaseCommand):
    help = "Send a campaign in this process (K worker processes), e.g. to benchmark against an SMTP sink."

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int)
        parser.add_argument("--schema", required=True, help="The tenant's schema name.")
        parser.add_argument("--workers", type=int, default=1, help="Parallel processes (= SMTP connections).")
        parser.add_argument("--host", default=None, help="SMTP host (default EMAIL_HOST).")
        parser.add_argument("--port", type=int, default=None, help="SMTP port (default EMAIL_PORT).")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--start", action="store_true", help="Start a draft/scheduled campaign first.")

    def handle(self, *args, campaign_id, schema, workers, host, port, batch_size, start, **options):
        if workers < 1 or workers > 64:
            raise CommandError("--workers is between 1 and 64.")
        overrides = {key: value for key, value in (("host", host), ("port", port)) if value}
        tenant = Tenant.objects.filter(schema_name=schema).first()
        if tenant is None:
            raise CommandError(f"No tenant with schema {schema}.")
        with tenant_context(tenant):
            campaign = Campaign.objects.filter(pk=campaign_id).first()
            if campaign is None:
                raise CommandError(f"No campaign {campaign_id} in schema {schema}.")
            if start:
                try:
                    lifecycle.campaign_start(campaign=campaign, enqueue=False)
                except (ValidationError, lifecycle.CampaignStateError) as error:
                    raise CommandError(str(error))
            campaign.refresh_from_db()
            if campaign.status != "sending":
                raise CommandError(f"The campaign is {campaign.status}; only a sending campaign is sent.")
            before = CampaignRecipient.objects.filter(campaign_id=campaign_id, status="sent").count()
        connections.close_all()
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        started = time.perf_counter()
        procs = [
            context.Process(target=_worker, args=(tenant, campaign_id, overrides, batch_size, results))
            for _ in range(workers)
        ]
        for proc in procs:
            proc.start()
        outcomes = []
        while len(outcomes) < len(procs):
            try:
                outcomes.append(results.get(timeout=1))
            except queue.Empty:
                if not any(proc.is_alive() for proc in procs) and results.empty():
                    break  # a worker died without a word (killed): report what the others did
        for proc in procs:
            proc.join()
        for _sent, _failed, error in outcomes:
            if error:
                self.stderr.write(f"a worker failed: {error}")
        seconds = time.perf_counter() - started
        sent = sum(s for s, _, _ in outcomes)
        failed = sum(f for _, f, _ in outcomes)
        with tenant_context(tenant):
            status = Campaign.objects.get(pk=campaign_id).status
            total_sent = CampaignRecipient.objects.filter(campaign_id=campaign_id, status="sent").count()
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        self.stdout.write(
            f"campaign {campaign_id}: {status}; sent {sent} (now {total_sent}, before {before}), failed {failed} "
            f"in {seconds:.2f} s = {sent / seconds if seconds else 0:.0f} messages/s with {workers} worker(s); "
            f"peak worker RSS {peak_kb / 1024:.0f} MB"
        )
