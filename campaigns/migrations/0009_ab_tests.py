from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0008_email_design"),
        ("customers", "0008_order_attribution"),
        ("segments", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="ab_decided_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="campaign",
            name="ab_decided_by",
            field=models.CharField(
                blank=True,
                choices=[("confidence", "Confidence"), ("timeout", "Timeout"), ("manual", "Manual")],
                db_default="",
                default="",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="ab_history",
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
        migrations.AddField(
            model_name="campaign",
            name="ab_test",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="campaign",
            name="ab_winner",
            field=models.CharField(blank=True, db_default="", default="", max_length=1),
        ),
        migrations.AddField(
            model_name="campaign",
            name="variants",
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
        migrations.AddField(
            model_name="campaignrecipient",
            name="ab_sample",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="campaignrecipient",
            name="variant",
            field=models.CharField(blank=True, db_default="", default="", max_length=1),
        ),
        migrations.AlterField(
            model_name="campaignrecipient",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("sending", "Sending"),
                    ("sent", "Sent"),
                    ("delivered", "Delivered"),
                    ("failed", "Failed"),
                    ("bounced", "Bounced"),
                    ("complained", "Complained"),
                    ("cancelled", "Cancelled"),
                    ("skipped", "Skipped"),
                    ("held", "Held for the A/B winner"),
                ],
                default="pending",
                max_length=10,
            ),
        ),
        migrations.AddIndex(
            model_name="campaign",
            index=models.Index(
                condition=models.Q(
                    ("ab_test__isnull", False), ("ab_winner", ""), ("status__in", ("sending", "paused"))
                ),
                fields=["started_at"],
                name="campaign_ab_undecided",
            ),
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=models.Index(
                condition=models.Q(("ab_sample", True)),
                fields=["campaign", "variant"],
                name="recipient_ab_sample",
            ),
        ),
    ]
