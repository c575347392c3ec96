import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0007_products"),
    ]

    operations = [
        migrations.CreateModel(
            name="OrderAttribution",
            fields=[
                (
                    "order",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="attribution",
                        serialize=False,
                        to="customers.order",
                    ),
                ),
                ("campaign_id", models.BigIntegerField(blank=True, null=True)),
                ("flow_id", models.BigIntegerField(blank=True, null=True)),
                ("step", models.CharField(blank=True, max_length=100, null=True)),
                ("touch", models.CharField(choices=[("click", "Click"), ("open", "Open")], max_length=5)),
                ("touched_at", models.DateTimeField()),
                ("placed_at", models.DateTimeField()),
                ("total", models.DecimalField(decimal_places=2, max_digits=14)),
                (
                    "counts",
                    models.BooleanField(
                        default=True, help_text="False once the order is cancelled or refunded."
                    ),
                ),
                ("attributed_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "customer",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="customers.customer",
                    ),
                ),
            ],
            options={
                "db_table": "customers_order_attribution",
                "indexes": [
                    models.Index(
                        condition=models.Q(("campaign_id__isnull", False)),
                        fields=["campaign_id"],
                        include=("customer", "total", "counts"),
                        name="attribution_campaign",
                    ),
                    models.Index(
                        condition=models.Q(("flow_id__isnull", False)),
                        fields=["flow_id", "step"],
                        include=("customer", "total", "counts"),
                        name="attribution_flow_step",
                    ),
                    models.Index(fields=["placed_at"], name="attribution_placed_at"),
                ],
            },
        ),
    ]
