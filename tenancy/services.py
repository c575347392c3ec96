"""Tenant provisioning: fast creation by cloning a migrated template schema, then a real migrate."""

import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from .clone import clone_schema
from .models import Domain, Tenant
from .roles import roles_ensure

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
RESERVED_SLUGS = {"public", "www", "admin", "api", "static", "information-schema", "template"}


def schema_for_slug(slug):
    return slug.replace("-", "_")


def validate_slug(slug):
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise ValidationError(
            {"slug": "A slug is 2-40 characters: lower-case letters, digits and '-', starting with a letter."}
        )
    schema = schema_for_slug(slug)
    if slug in RESERVED_SLUGS or schema.startswith("pg_") or schema == settings.TENANT_TEMPLATE_SCHEMA:
        raise ValidationError({"slug": f"'{slug}' is reserved."})
    if Tenant.objects.filter(schema_name=schema).exists() or schema_exists(schema):
        raise ValidationError({"slug": f"A tenant '{slug}' already exists."})
    return schema


def normalize_domain(domain):
    """Lower-case host name without port; raises ValidationError naming what is wrong."""
    if not isinstance(domain, str):
        raise ValidationError({"domain": "A domain is a host name such as acme.example.com."})
    host = domain.strip().lower().rstrip(".")
    labels = host.split(".")
    if not host or len(host) > 253 or not all(HOST_LABEL_RE.match(label) for label in labels):
        raise ValidationError({"domain": f"'{domain}' is not a valid host name (no scheme, port or path)."})
    return host


def validate_domain(domain):
    host = normalize_domain(domain)
    if Domain.objects.filter(domain=host).exists():
        raise ValidationError({"domain": f"The domain '{host}' is already in use."})
    if host == settings.PUBLIC_DOMAIN:
        raise ValidationError({"domain": f"'{host}' is the public host."})
    return host


def public_tenant_ensure(*, domain=None):
    """The public schema's tenant row and its domain (the operators' host)."""
    tenant, _ = Tenant.objects.get_or_create(schema_name="public", defaults={"name": "Platform"})
    domain = normalize_domain(domain or settings.PUBLIC_DOMAIN)
    Domain.objects.get_or_create(domain=domain, defaults={"tenant": tenant, "is_primary": True})
    return tenant


def template_ensure(*, verbosity=0):
    """The template schema that new tenants are cloned from, created and migrated if missing.

    It is a tenant row (inactive, no domain), so every `migrate` keeps it current with the code.
    """
    schema = settings.TENANT_TEMPLATE_SCHEMA
    template = Tenant.objects.filter(schema_name=schema).first()
    if template is None:
        template = Tenant(schema_name=schema, name="Template", is_active=False, is_template=True)
        template.save()
    if not _schema_is_migrated(schema):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        call_command(
            "migrate_schemas", schema_name=schema, tenant=True, interactive=False, verbosity=verbosity
        )
    return template


def _schema_is_migrated(schema):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'django_migrations'",
            [schema],
        )
        return cursor.fetchone() is not None


@dataclass
class CreatedTenant:
    tenant: Tenant
    domain: Domain
    admin_email: str | None
    seconds: float


def tenant_create(*, slug, domain, name=None, admin_email=None, admin_password=None, verbosity=0):
    """Create a working tenant: schema, domain, first admin user and default templates.

    All or nothing: any failure leaves no tenant row, no domain and no schema behind.
    """
    started = time.monotonic()
    schema = validate_slug(slug)
    host = validate_domain(domain)
    if admin_email is not None:
        admin_email = admin_email.strip().lower()
        try:
            validate_email(admin_email)
        except ValidationError:
            raise ValidationError({"admin_email": f"'{admin_email}' is not a valid email address."})
        if not admin_password or len(admin_password) < 8:
            raise ValidationError({"admin_password": "The admin password needs at least 8 characters."})
    template_ensure(verbosity=verbosity)

    # DDL is transactional in PostgreSQL: the clone, the migrate and the rows commit together or not at all.
    with transaction.atomic():
        tenant = Tenant(schema_name=schema, name=name or slug.replace("-", " ").title())
        tenant.save()
        domain_row = Domain.objects.create(domain=host, tenant=tenant, is_primary=True)
        clone_schema(source=settings.TENANT_TEMPLATE_SCHEMA, target=schema)
        # A real migrate, not a faked one: applies whatever the template has not got yet.
        call_command(
            "migrate_schemas", schema_name=schema, tenant=True, interactive=False, verbosity=verbosity
        )
        with schema_context(schema):
            tenant_provision(tenant=tenant, admin_email=admin_email, admin_password=admin_password)
    connection.set_schema_to_public()
    return CreatedTenant(tenant, domain_row, admin_email, time.monotonic() - started)


def tenant_provision(*, tenant, admin_email=None, admin_password=None):
    """What every new tenant starts with, inside its schema: roles, first admin, default templates."""
    if admin_email:
        user_model = get_user_model()
        user = user_model.objects.create_superuser(
            username=admin_email, email=admin_email, password=admin_password
        )
        user.groups.add(*roles_ensure()[:1])
    roles_ensure()
    for hook in PROVISION_HOOKS:
        hook(tenant)


# Tenant apps add what a new tenant starts with (e.g. default transactional templates) here at
# start-up, so tenancy never imports the apps above it.
PROVISION_HOOKS = []


def tenant_deactivate(*, tenant):
    """Stop serving a tenant; its data is kept. It sends nothing more, and its hosts answer 410 from
    now on except its recipients' unsubscribe and preference links (DEACTIVATED_TENANT_PATHS)."""
    if tenant.schema_name == "public" or tenant.is_template:
        raise ValidationError({"tenant": "The public tenant and the template cannot be deactivated."})
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False, deactivated_at=timezone.now())
    tenant.refresh_from_db()
    return tenant


def tenant_activate(*, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(is_active=True, deactivated_at=None)
    tenant.refresh_from_db()
    return tenant


def tenant_base_url(tenant):
    """https://acme.example.com[:port]: the tenant's primary domain with APP_URL's scheme and port."""
    domain = tenant.get_primary_domain()
    host = domain.domain if domain else settings.PUBLIC_DOMAIN
    parts = settings.APP_URL_PARTS
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"
