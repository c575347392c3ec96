"""`POST /api/auth/token`, and the life of a token: it dies when its user is deactivated or changes
password, and after API_TOKEN_TTL_DAYS without use (PRODUCT.md "API conventions")."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token

from core.models import TokenUse
from tests.conftest import PASSWORD, TENANT_A, make_api_client


@pytest.fixture(autouse=True)
def no_failed_logins_counted(tenant, settings):
    settings.PASSWORD_HASHERS = [  # users made here hash fast; the admin's PBKDF2 hash still verifies
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    cache.clear()
    yield
    cache.clear()


def login(anon_api, username, password=PASSWORD):
    return anon_api.post("/api/auth/token", {"username": username, "password": password}, format="json")


def token_client(tenant, token):
    client = make_api_client(tenant)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    client.token = token
    return client


@pytest.fixture
def marketer_api(tenant, anon_api, marketer):
    """A client authenticated with a token the marketer got from the token endpoint."""
    return token_client(tenant, login(anon_api, marketer.username).json()["token"])


def test_it_returns_a_token_for_valid_credentials(anon_api, admin_user):
    response = login(anon_api, f"admin@{TENANT_A['domain']}")
    assert response.status_code == 200
    assert len(response.json()["token"]) == 40


def test_it_refuses_wrong_credentials_with_400(anon_api, admin_user):
    response = login(anon_api, f"admin@{TENANT_A['domain']}", "nope")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_it_returns_the_same_living_token_on_every_login(anon_api, marketer):
    assert login(anon_api, marketer.username).json() == login(anon_api, marketer.username).json()


def test_it_kills_the_token_when_its_user_is_deactivated_for_good(marketer_api, marketer):
    assert marketer_api.get("/api/customers").status_code == 200
    marketer.is_active = False
    marketer.save()
    assert marketer_api.get("/api/customers").status_code == 401
    marketer.is_active = True
    marketer.save()
    assert marketer_api.get("/api/customers").status_code == 401  # turning the user on again revives nothing
    assert not Token.objects.filter(user=marketer).exists()


def test_it_kills_the_token_when_its_user_is_deactivated_without_a_save_signal(marketer_api, marketer):
    type(marketer).objects.filter(pk=marketer.pk).update(is_active=False)
    assert marketer_api.get("/api/customers").status_code == 401
    type(marketer).objects.filter(pk=marketer.pk).update(is_active=True)
    assert marketer_api.get("/api/customers").status_code == 401
    assert not Token.objects.filter(user=marketer).exists()


def test_it_kills_the_token_when_the_user_changes_password(tenant, anon_api, marketer_api, marketer):
    marketer.set_password("a-new-password-2025")
    marketer.save()
    response = marketer_api.get("/api/customers")
    assert response.status_code == 401
    assert "password changed" in response.json()["detail"]
    assert not Token.objects.filter(key=marketer_api.token).exists()
    # Logging in with the new password gives a new token that works.
    fresh = login(anon_api, marketer.username, "a-new-password-2025").json()["token"]
    assert fresh != marketer_api.token
    assert token_client(tenant, fresh).get("/api/customers").status_code == 200


def test_it_kills_a_token_made_elsewhere_once_used_when_the_password_changes(tenant, marketer):
    token = Token.objects.create(user=marketer)  # e.g. on the admin's token page
    client = token_client(tenant, token.key)
    assert client.get("/api/customers").status_code == 200
    marketer.set_password("a-new-password-2025")
    marketer.save()
    assert client.get("/api/customers").status_code == 401


@pytest.mark.parametrize(("idle_days", "alive"), [(89, True), (91, False)])
def test_it_expires_a_token_after_api_token_ttl_days_without_use(marketer_api, marketer, idle_days, alive):
    TokenUse.objects.filter(token_id=marketer_api.token).update(
        last_used_at=timezone.now() - timedelta(days=idle_days)
    )
    response = marketer_api.get("/api/customers")
    assert response.status_code == (200 if alive else 401)
    assert Token.objects.filter(key=marketer_api.token).exists() is alive
    if not alive:
        assert "90 days" in response.json()["detail"]


def test_it_honours_the_ttl_setting(marketer_api, settings):
    settings.API_TOKEN_TTL_DAYS = 7
    TokenUse.objects.filter(token_id=marketer_api.token).update(
        last_used_at=timezone.now() - timedelta(days=8)
    )
    assert marketer_api.get("/api/customers").status_code == 401


def test_it_expires_an_old_token_made_elsewhere_and_never_used(tenant, marketer):
    token = Token.objects.create(user=marketer)
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - timedelta(days=120))
    assert token_client(tenant, token.key).get("/api/customers").status_code == 401


def test_it_records_the_last_use_at_most_once_an_hour(marketer_api):
    def writes(requests):
        with CaptureQueriesContext(connection) as queries:
            for _ in range(requests):
                assert marketer_api.get("/api/customers").status_code == 200
        return [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "api_token_use"')]

    assert writes(5) == []  # issued a moment ago
    two_hours_ago = timezone.now() - timedelta(hours=2)
    TokenUse.objects.filter(token_id=marketer_api.token).update(last_used_at=two_hours_ago)
    assert len(writes(5)) == 1
    assert TokenUse.objects.get(token_id=marketer_api.token).last_used_at > timezone.now() - timedelta(
        minutes=1
    )
