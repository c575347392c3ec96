"""Roles: admins manage users and the tenant's settings; marketers do the CRM work and nothing else."""

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection

from tenancy.roles import ADMIN, MARKETER, roles_ensure, roles_sync_after_migrate, user_role
from tests.admin.conftest import host_client
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def role_admin(tenant):
    user = get_user_model().objects.create_user(
        username="boss@tenant-a.localhost", email="boss@tenant-a.localhost", password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=ADMIN))
    return user


def test_it_gives_marketers_the_crm_and_nothing_else(marketer):
    assert marketer.has_perm("customers.change_customer")
    assert marketer.has_perm("segments.add_segment")
    assert marketer.has_perm("campaigns.add_campaign")
    assert marketer.has_perm("campaigns.view_campaign")
    assert not marketer.has_perm("auth.view_user")
    assert not marketer.has_perm("auth.change_user")
    assert not marketer.has_perm("auth.change_group")
    assert not marketer.has_perm("authtoken.view_token")
    assert not marketer.has_perm("tenancy.change_tenant")
    assert user_role(marketer) == MARKETER


def test_it_gives_admins_users_roles_and_settings(role_admin):
    assert role_admin.has_perm("auth.change_user")
    assert role_admin.has_perm("auth.add_user")
    assert role_admin.has_perm("tenancy.change_tenant")
    assert role_admin.has_perm("campaigns.change_campaign")
    assert not role_admin.has_perm("tenancy.add_tenant")
    assert not role_admin.has_perm("tenancy.change_domain")
    assert user_role(role_admin) == ADMIN


def test_it_is_idempotent(tenant):
    admin, marketer = roles_ensure()
    before = (
        set(admin.permissions.values_list("pk", flat=True)),
        set(marketer.permissions.values_list("pk", flat=True)),
    )

    again = roles_ensure()

    assert Group.objects.filter(name__in=[ADMIN, MARKETER]).count() == 2
    assert (
        set(again[0].permissions.values_list("pk", flat=True)),
        set(again[1].permissions.values_list("pk", flat=True)),
    ) == before


@pytest.mark.parametrize(
    "path",
    [
        "/admin/auth/user/",
        "/admin/auth/user/add/",
        "/admin/auth/group/",
        "/admin/auth/group/add/",
        "/admin/tenancy/tenant/settings/",
    ],
)
def test_it_refuses_marketers_user_management_and_settings(marketer_client, path):
    assert marketer_client.get(path).status_code == 403


def test_it_refuses_a_marketer_creating_a_user_and_nothing_changes(marketer_client):
    users = get_user_model().objects.count()

    response = marketer_client.post(
        "/admin/auth/user/add/",
        {"username": "sneaky@x.test", "password1": "Very-long-pass-123", "password2": "Very-long-pass-123"},
    )

    assert response.status_code == 403
    assert get_user_model().objects.count() == users


def test_it_refuses_a_marketer_editing_their_own_groups_and_nothing_changes(marketer_client, marketer):
    response = marketer_client.post(
        f"/admin/auth/user/{marketer.pk}/change/",
        {"username": marketer.username, "groups": [Group.objects.get(name=ADMIN).pk], "is_staff": "on"},
    )

    assert response.status_code == 403
    assert list(marketer.groups.values_list("name", flat=True)) == [MARKETER]


def test_it_leaves_user_management_out_of_a_marketers_navigation(marketer_client):
    response = marketer_client.get("/admin/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/admin/auth/user/"' not in html
    assert 'href="/admin/tenancy/tenant/settings/"' not in html
    assert 'href="/admin/customers/customer/"' in html


def test_it_shows_user_management_and_settings_to_admins(role_admin):
    client = host_client(role_admin)

    html = client.get("/admin/").content.decode()

    assert 'href="/admin/auth/user/"' in html
    assert 'href="/admin/tenancy/tenant/settings/"' in html
    assert client.get("/admin/auth/user/").status_code == 200
    assert client.get("/admin/tenancy/tenant/settings/").status_code == 200


def test_it_keeps_superuser_status_out_of_a_non_superuser_admins_hands(role_admin, marketer):
    client = host_client(role_admin)

    response = client.post(
        f"/admin/auth/user/{marketer.pk}/change/",
        {
            "username": marketer.username,
            "email": marketer.email,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [Group.objects.get(name=MARKETER).pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    assert response.status_code in (200, 302)
    marketer.refresh_from_db()
    assert marketer.is_superuser is False


def test_it_shows_each_users_role_in_the_list(role_admin, marketer):
    html = host_client(role_admin).get("/admin/auth/user/").content.decode()

    assert ">Marketer<" in html
    assert ">Admin<" in html


def test_it_hides_operators_tenant_admin_on_a_tenant_host(admin_client_a):
    assert admin_client_a.get("/admin/tenancy/tenant/").status_code == 403
    assert admin_client_a.get("/admin/tenancy/domain/").status_code == 403


def test_it_lets_an_admin_add_a_marketer_with_email_as_login(role_admin):
    client = host_client(role_admin)
    assert 'name="role"' in client.get("/admin/auth/user/add/").content.decode()

    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": " New.Person@Shop.example ",
            "role": MARKETER,
            "password1": "Long-pass-4-new",
            "password2": "Long-pass-4-new",
        },
    )

    assert response.status_code == 302
    user = get_user_model().objects.get(username="new.person@shop.example")
    assert (user.email, user.is_staff, user.is_superuser) == ("new.person@shop.example", True, False)
    assert user_role(user) == MARKETER
    assert user.has_perm("campaigns.add_campaign") and not user.has_perm("auth.view_user")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "not-an-email", "role": MARKETER}, "username"),
        ({"username": "admin@tenant-a.localhost", "role": MARKETER}, "username"),
        ({"username": "ok@shop.example", "role": "Owner"}, "role"),
    ],
)
def test_it_refuses_a_bad_new_user_naming_the_field_and_adds_nobody(role_admin, data, field):
    users = get_user_model().objects.count()

    response = host_client(role_admin).post(
        "/admin/auth/user/add/", {**data, "password1": "Long-pass-4-new", "password2": "Long-pass-4-new"}
    )

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert get_user_model().objects.count() == users


def test_it_brings_roles_up_to_date_after_a_migrate_of_a_tenant_schema(tenant):
    marketer = Group.objects.get(name=MARKETER)
    lost = Permission.objects.get(codename="add_campaign")
    marketer.permissions.remove(lost)

    roles_sync_after_migrate(sender=list(apps.get_app_configs())[-1], using="default")

    assert marketer.permissions.filter(pk=lost.pk).exists()


def test_it_gives_the_public_schema_no_roles_after_a_migrate(tenant):
    connection.set_schema_to_public()
    Group.objects.filter(name__in=[ADMIN, MARKETER]).delete()

    roles_sync_after_migrate(sender=list(apps.get_app_configs())[-1], using="default")

    assert not Group.objects.filter(name__in=[ADMIN, MARKETER]).exists()


def test_it_keeps_the_built_in_roles_read_only_and_unchanged(role_admin):
    client = host_client(role_admin)
    marketer_group = Group.objects.get(name=MARKETER)
    before = set(marketer_group.permissions.values_list("pk", flat=True))
    user_perm = Permission.objects.get(codename="change_user")

    response = client.post(
        f"/admin/auth/group/{marketer_group.pk}/change/",
        {"name": MARKETER, "permissions": [*before, user_perm.pk]},
    )

    assert response.status_code == 403
    assert client.post(f"/admin/auth/group/{marketer_group.pk}/delete/", {"post": "yes"}).status_code == 403
    assert set(marketer_group.permissions.values_list("pk", flat=True)) == before
    assert client.get(f"/admin/auth/group/{marketer_group.pk}/change/").status_code == 200  # readable


def test_it_lets_an_admin_make_a_group_of_their_own(role_admin):
    response = host_client(role_admin).post("/admin/auth/group/add/", {"name": "Interns", "permissions": []})

    assert response.status_code == 302
    assert Group.objects.filter(name="Interns").exists()
