from django.db import models


class SummaryDue(models.Model):
    """A sent campaign whose day-after summary is still to be written (public schema).

    Written in the same transaction that marks the campaign sent, read by the beat task
    `assist.tasks.write_due_summaries` with one indexed query: beat never visits a tenant without a
    summary due (TENANCY.md, "Periodic work across tenants"), and a lost task message loses nothing
    (the row comes due again an hour after it was handed out, until the summary is written).
    """

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")
    campaign_id = models.BigIntegerField()
    due_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "assist_summary_due"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "campaign_id"], name="assist_summary_due_unique")
        ]

    def __str__(self):
        return f"summary of campaign {self.campaign_id} in {self.tenant_id} at {self.due_at}"
