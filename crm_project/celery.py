"""The Celery app: tenant-aware (the schema travels in each message's headers), broker Redis."""

import os

from celery.schedules import crontab
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")

app = CeleryApp("crm_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Beat runs these from the public schema. The per-tenant ones read their work markers (tenancy/work.py)
# in one statement and hand a task to each tenant that has work of their kind: an idle tenant costs
# no tick anything, so they can tick often. The hourly sweep repairs any marker that got lost.
app.conf.beat_schedule = {
    # Start campaigns whose scheduled_at has come (a marketer's "9:00" means 9:00, within 15 s).
    "campaigns-dispatch-due": {"task": "campaigns.tasks.dispatch_due_campaigns", "schedule": 15.0},
    # A/B tests whose wait is over get their winner; the rest of the audience goes out with it.
    "campaigns-decide-ab-tests": {"task": "campaigns.tasks.decide_ab_tests", "schedule": 30.0},
    # Re-queue recipients whose worker died holding their lease.
    "campaigns-reclaim-leases": {"task": "campaigns.tasks.reclaim_expired_leases", "schedule": 120.0},
    # Resume sending campaigns nobody works on: a Redis restart loses every queued task message.
    # With CAMPAIGN_STALL_SECONDS (30 s) sending goes on within about a minute of Redis coming back.
    "campaigns-resume-stalled": {"task": "campaigns.tasks.resume_stalled_campaigns", "schedule": 20.0},
    # Publish the transactional outbox; changes also kick it after commit, this catches the rest.
    "events-publish-outbox": {"task": "events.tasks.publish_outbox", "schedule": 10.0},
    # Prune outbox rows that RabbitMQ confirmed long ago.
    "events-prune-outbox": {"task": "events.tasks.prune_outbox", "schedule": crontab(minute=17)},
    # Forget applied webshop message ids once the webshop can no longer redeliver them.
    "events-prune-inbox": {"task": "events.tasks.prune_inbox", "schedule": crontab(minute=23)},
    # Re-enqueue order emails whose task was lost (task broker down) or whose worker died mid-send.
    "transactional-requeue": {
        "task": "campaigns.transactional.requeue_transactional_emails",
        "schedule": 60.0,
    },
    # Flows: advance due runs and send queued flow emails (every FLOW_TICK_SECONDS), and the
    # periodic triggers (customers created, segments entered, dates) once a minute; both only for the
    # tenants whose markers are due (tenancy/work.py).
    "flows-dispatch": {
        "task": "flows.tasks.dispatch_flows",
        "schedule": float(os.environ.get("FLOW_TICK_SECONDS", "5")),
    },
    "flows-sweep": {"task": "flows.tasks.sweep_flow_triggers", "schedule": 15.0},
    # Roll raw open/click hits up into counters, interactions and events.
    "tracking-rollup": {"task": "tracking.tasks.rollup_all_tenants", "schedule": 15.0},
    # Day-after campaign summaries that came due (one indexed read of a public table per tick).
    "assist-due-summaries": {"task": "assist.tasks.write_due_summaries", "schedule": 300.0},
    # Delete raw hits older than TRACKING_HIT_RETENTION_DAYS that the roll-up has counted.
    "tracking-prune-hits": {"task": "tracking.tasks.prune_hits_all_tenants", "schedule": crontab(minute=41)},
    # Every serving tenant's markers checked against its data: a marker lost between a write and its
    # marker (a process killed there) is written again, so no work waits longer than this.
    "tenancy-sweep-periodic-work": {
        "task": "tenancy.tasks.sweep_periodic_work",
        "schedule": crontab(minute=53),
    },
}
