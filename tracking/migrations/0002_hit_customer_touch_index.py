import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0007_campaign_intent_and_summary"),
        ("customers", "0008_order_attribution"),
        ("tracking", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="hit",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="customers.customer",
            ),
        ),
        # Hits recorded before the column existed: their recipient's customer.
        migrations.RunSQL(
            """
            UPDATE tracking_hits h SET customer_id = r.customer_id
            FROM campaign_recipients r
            WHERE r.id = h.recipient_id AND h.customer_id IS NULL
            """,
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name="hit",
            index=models.Index(
                condition=models.Q(("is_machine", False)),
                fields=["customer", "occurred_at"],
                include=("kind", "campaign", "id"),
                name="tracking_hit_touch",
            ),
        ),
    ]
