from django.db import migrations

# pg_trgm makes `?search=` fast at a million customers. It lives in public (on every tenant's
# search_path). Servers without the contrib extensions (an embedded dev server) simply go without.
CREATE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
    END IF;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, migrations.RunSQL.noop)]
