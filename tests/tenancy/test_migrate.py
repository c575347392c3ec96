import io

from django.core.management import call_command
from django.db import connection

from crm_project.management.commands.migrate import schemas_behind


def test_it_finds_no_tenant_behind_after_migrate(db):
    assert schemas_behind(["tenant_a", "tenant_b", "tenant_template"]) == []


def test_it_finds_the_schema_that_lacks_a_migration_and_migrates_only_it(db):
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE tenant_b.django_session")
        cursor.execute("DELETE FROM tenant_b.django_migrations WHERE app = 'sessions'")
    assert schemas_behind(["tenant_a", "tenant_b"]) == ["tenant_b"]
    out = io.StringIO()
    call_command("migrate", verbosity=1, stdout=out, interactive=False)
    connection.set_schema_to_public()
    assert "of" in out.getvalue() and "tenant schemas are up to date" in out.getvalue()
    assert schemas_behind(["tenant_a", "tenant_b"]) == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tenant_b.django_session")
        assert cursor.fetchone() == (0,)
