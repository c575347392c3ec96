from django.db import migrations, models

import core.money
import tenancy.models


class Migration(migrations.Migration):
    dependencies = [
        ("tenancy", "0008_attribution_windows"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="currency",
            field=models.CharField(
                default=tenancy.models.default_currency,
                max_length=3,
                validators=[core.money.validate_currency],
            ),
        ),
        migrations.AddField(
            model_name="tenant",
            name="settings_saved_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="tenant",
            name="onboarding_dismissed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
