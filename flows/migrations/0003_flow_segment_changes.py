import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    """Customers written since the dispatcher last looked, for the segment triggers' next tick."""

    dependencies = [("flows", "0002_flow_run_one_active")]

    operations = [
        migrations.CreateModel(
            name="FlowSegmentChange",
            fields=[
                ("customer_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("changed_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"db_table": "flow_segment_changes"},
        ),
    ]
