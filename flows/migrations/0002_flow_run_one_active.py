from django.db import migrations, models


class Migration(migrations.Migration):
    """At most one active run per customer and flow, enforced by the database (two triggers racing
    under re-entry "always" could enter twice). Duplicates a race left behind exit first: the earliest
    active run is the one that stays."""

    dependencies = [("flows", "0001_initial")]

    operations = [
        migrations.RunSQL(
            """
            UPDATE flow_runs AS r
            SET status = 'exited', exit_reason = 'a second active run of the same customer',
                step_id = '', due_at = NULL, waiting_since = NULL,
                finished_at = clock_timestamp(), updated_at = clock_timestamp()
            WHERE r.status = 'active' AND EXISTS (
                SELECT 1 FROM flow_runs AS p
                WHERE p.flow_id = r.flow_id AND p.customer_id = r.customer_id AND p.status = 'active'
                  AND p.id < r.id
            )
            """,
            migrations.RunSQL.noop,
        ),
        migrations.AddConstraint(
            model_name="flowrun",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "active")),
                fields=("flow", "customer"),
                name="flow_run_one_active",
            ),
        ),
    ]
