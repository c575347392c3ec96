"""Admin tests: Django's test client on tenant A's host, logged in as an admin or a marketer."""

import pytest
from django.test import Client

HOST = "tenant-a.localhost"
HOST_B = "tenant-b.localhost"
PUBLIC_HOST = "localhost"


def host_client(user=None, *, host=HOST, enforce_csrf_checks=False):
    client = Client(HTTP_HOST=host, enforce_csrf_checks=enforce_csrf_checks)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users made by these tests hash fast; existing PBKDF2 hashes still verify."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]


@pytest.fixture
def admin_client_a(admin_user):
    return host_client(admin_user)


@pytest.fixture
def marketer_client(marketer):
    return host_client(marketer)
