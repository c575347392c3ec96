"""Flows: automated journeys, each customer on their own clock (PRODUCT.md "Flows").

- `Flow` holds the current definition (trigger, steps, exit rules, ...) and `version`; every version
  that was ever active is kept in `FlowVersion`, so a run knows the definition it walks.
- `FlowRun` is one customer's walk through a flow: unique on flow + customer + entry key (the
  re-entry policy is that key, see flows.entry). An active run's next step is `step_id`, due at
  `due_at`: waiting runs are rows in a partial index, never broker messages.
- `FlowStepLog` is the at-most-once guard: one row per run and step, written in the transaction that
  performs the step. An email step's message is a recipient row of the step's carrier campaign
  (`FlowCarrier`), so it is sent, tracked, unsubscribed and attributed by the campaign machinery.
- `CustomEvent` is what `POST /api/events` stores, once per `event_id`.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from customers.models import Customer


def reentry_default():
    return "never"


class Flow(models.Model):
    STATUS_CHOICES = [
        ("draft", "Draft"),
        ("active", "Active"),
        ("paused", "Paused"),
        ("archived", "Archived"),
    ]
    # Live: entering customers now (active) or again once resumed (paused); draft and archived are not.
    LIVE_STATUSES = ("active", "paused")

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="draft", db_index=True)
    trigger = models.JSONField(default=dict)
    steps = models.JSONField(default=list)
    exit_rules = models.JSONField(null=True, blank=True)
    # "never", "always" or {"after_days": N}
    reentry = models.JSONField(default=reentry_default)
    frequency_cap_hours = models.PositiveIntegerField(default=16)
    # {"start_hour": 8, "end_hour": 21} in the tenant's time zone, or null
    send_window = models.JSONField(null=True, blank=True)
    from_email = models.EmailField(blank=True, default="")
    from_name = models.CharField(max_length=200, blank=True, default="")
    version = models.PositiveIntegerField(default=1)
    # Only triggers at or after this moment count (activation never reaches back in time).
    activated_at = models.DateTimeField(null=True, blank=True)
    # The periodic sweeps (customer created, segment entered, dates) looked up to here.
    swept_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "flows"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.name


class FlowVersion(models.Model):
    """A definition as it was when it became version `version` (runs continue by step id)."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    definition = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "flow_versions"
        ordering = ["flow", "-version"]
        constraints = [models.UniqueConstraint(fields=["flow", "version"], name="flow_version_unique")]


class FlowRun(models.Model):
    STATUS_CHOICES = [("active", "Active"), ("completed", "Completed"), ("exited", "Exited")]

    # No index of their own: the composite ones below lead with each (every index is written again
    # whenever the dispatcher moves a run, since due_at is in one).
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs", db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="flow_runs", db_index=False)
    # The re-entry policy as a key: "once" (never), or what entered it (event id, order id, date).
    entry_key = models.CharField(max_length=200)
    # The customer's n-th run of this flow: an email step's carrier campaign per round keeps
    # "one message per address and campaign" true when a customer walks a flow again.
    entry_number = models.PositiveIntegerField(default=1)
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="active")
    # The next step to perform ("" once finished), due at `due_at`.
    step_id = models.CharField(max_length=64, blank=True, default="")
    due_at = models.DateTimeField(null=True, blank=True)
    # While at a wait_for step: since when it waits (what happened after that counts).
    waiting_since = models.DateTimeField(null=True, blank=True)
    # What entered the run: {"event": {"id", "name", "properties"}} or {"order": id}.
    context = models.JSONField(default=dict, blank=True)
    exit_reason = models.TextField(blank=True, default="")
    entered_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "flow_runs"
        ordering = ["-entered_at", "-id"]
        constraints = [
            # Customer first: it is also the index of a customer's runs (the re-entry policy's
            # lookup, waking waiting runs, "never entered" for segment triggers), so no second one.
            models.UniqueConstraint(fields=["customer", "flow", "entry_key"], name="flow_run_entry_unique"),
            # A customer's n-th run of a flow is one run: two entries that read the same earlier runs
            # (two transactions at once) cannot both be written, even when the first one's run ended
            # as it entered (flows.entry), which flow_run_one_active below does not see.
            models.UniqueConstraint(
                fields=["customer", "flow", "entry_number"], name="flow_run_number_unique"
            ),
            # At most one active run per customer and flow, whatever the re-entry policy: two triggers
            # at once (two transactions) cannot both enter, as the NOT EXISTS of runs_enter alone allowed.
            models.UniqueConstraint(
                fields=["flow", "customer"], condition=Q(status="active"), name="flow_run_one_active"
            ),
        ]
        indexes = [
            # The dispatcher's only read: an active flow's due runs, oldest first. Partial, so a
            # million runs that are finished cost nothing and a million waiting ones cost one index
            # range scan per active flow; by flow, so the due runs of a paused flow cost nothing.
            models.Index(fields=["flow", "due_at"], name="flow_run_due", condition=Q(status="active")),
            models.Index(fields=["flow", "status"], name="flow_run_flow_status"),
        ]

    def __str__(self):
        return f"run #{self.pk} of flow #{self.flow_id}"


class FlowStepLog(models.Model):
    """What happened at one step of one run; unique on (run, step): the at-most-once guard."""

    STATUS_CHOICES = [
        ("done", "Done"),
        ("queued", "Email queued"),
        ("skipped", "Skipped"),
        ("yes", "Yes"),
        ("no", "No"),
        ("exited", "Exited here"),
    ]

    # Indexed by the unique (run, step) below, which leads with it.
    run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="steps", db_index=False)
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="+", db_index=False)
    step_id = models.CharField(max_length=64)
    step_type = models.CharField(max_length=20)
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES)
    detail = models.TextField(blank=True, default="")
    # An email step's message: its recipient row carries sending status, opens, clicks.
    recipient = models.OneToOneField(
        CampaignRecipient, null=True, blank=True, on_delete=models.SET_NULL, related_name="flow_step"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "flow_step_logs"
        ordering = ["run", "at", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "step_id"], name="flow_step_once")]
        indexes = [models.Index(fields=["flow", "step_id"], name="flow_step_stats")]


class FlowCarrier(models.Model):
    """The campaign that carries one email step's messages (per flow version and entry round), so
    the sender's guarantees, tracking tokens, hits, unsubscribes and stats apply to flow emails as
    they do to campaigns. Its status stays `sent`: nothing of the campaign scheduler touches it."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="carriers")
    version = models.PositiveIntegerField()
    step_id = models.CharField(max_length=64)
    round = models.PositiveIntegerField(default=1)
    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="flow_carrier")

    class Meta:
        db_table = "flow_carriers"
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "version", "step_id", "round"], name="flow_carrier_unique"
            )
        ]


class CustomEvent(models.Model):
    """A customer event the webshop reported (`POST /api/events`), stored once per `event_id`."""

    # Unique through a constraint, not `unique=True`: that adds a second index for LIKE on it, and
    # the customer's own index is custom_event_customer's first column (every stored event wrote both).
    event_id = models.CharField(max_length=200)
    name = models.CharField(max_length=100)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="custom_events", db_index=False
    )
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "flow_custom_events"
        ordering = ["-occurred_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["event_id"], name="custom_event_id_unique")]
        indexes = [models.Index(fields=["customer", "name", "occurred_at"], name="custom_event_customer")]

    def __str__(self):
        return f"{self.name} ({self.event_id})"


class FlowSegmentChange(models.Model):
    """A customer written since the dispatcher last looked (customers.hooks.customers_changed): the
    next tick checks the `segment_entered` flows for these customers only, then deletes the rows. No
    foreign key: the writer's one extra statement stays an index insert, and the check joins the
    customers anyway."""

    customer_id = models.BigIntegerField(primary_key=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "flow_segment_changes"
