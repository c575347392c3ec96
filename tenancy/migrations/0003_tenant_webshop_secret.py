from django.db import migrations, models

import tenancy.models


def give_each_tenant_its_own_secret(apps, schema_editor):
    # AddField with a callable default would give every existing tenant the same value.
    Tenant = apps.get_model("tenancy", "Tenant")
    for tenant in Tenant.objects.filter(webshop_secret="").only("pk"):
        Tenant.objects.filter(pk=tenant.pk).update(webshop_secret=tenancy.models.webshop_secret_new())


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0002_extensions")]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="webshop_secret",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(give_each_tenant_its_own_secret, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="tenant",
            name="webshop_secret",
            field=models.CharField(default=tenancy.models.webshop_secret_new, editable=False, max_length=64),
        ),
    ]
