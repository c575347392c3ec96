"""Password guessing against the token endpoint and the admin login (PRODUCT.md "API conventions").

Failed logins are limited per account and client, per client over all accounts, and per account over
all clients that never signed in to it; the client is the TCP peer unless TRUSTED_PROXIES names the
proxies in front of us. Each test is an attack: a forged X-Forwarded-For, one password sprayed over
many usernames, guesses sent in parallel, an attacker behind the same proxy as the real user.
"""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connections
from django.test import Client
from rest_framework.authtoken.models import Token

from core import throttling
from tests.conftest import PASSWORD, TENANT_A

HOST = TENANT_A["domain"]
LIMITS = {
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_MAX_FAILURES_PER_CLIENT": 12,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 20,
    "LOGIN_FAILURE_WINDOW_SECONDS": 600,
}


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def limits(settings, tenant):
    """Small limits, fast hashing for the users made here, and no counters left by other tests."""
    for name, value in LIMITS.items():
        setattr(settings, name, value)
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(throttling, "clock", fake)
    return fake


@pytest.fixture
def user(tenant):
    return get_user_model().objects.create_user(
        username="ann@tenant-a.localhost", email="ann@tenant-a.localhost", password=PASSWORD, is_staff=True
    )


def token_login(username, password, **meta):
    return Client(HTTP_HOST=HOST).post(
        "/api/auth/token",
        {"username": username, "password": password},
        content_type="application/json",
        **meta,
    )


def admin_login(username, password, **meta):
    return Client(HTTP_HOST=HOST).post("/admin/login/", {"username": username, "password": password}, **meta)


def admin_succeeded(response):
    return response.status_code == 302 and "/admin/login/" not in response["Location"]


LOGINS = {"token": token_login, "admin": admin_login}
FAILED = {"token": 400, "admin": 200}


@pytest.mark.parametrize("kind", ["token", "admin"])
def test_it_ignores_a_forged_x_forwarded_for_without_trusted_proxies(kind, user):
    login = LOGINS[kind]
    codes = [
        login(user.username, "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(40)
    ]
    assert codes[:5] == [FAILED[kind]] * 5
    assert set(codes[5:]) == {429}
    # ... and the real password from that client waits too (no guess gets through the 429).
    assert login(user.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.250").status_code == 429


@pytest.mark.parametrize("kind", ["token", "admin"])
def test_it_stops_one_client_spraying_one_password_over_sixty_usernames(kind, tenant):
    login = LOGINS[kind]
    codes = [login(f"user{i}@tenant-a.localhost", "Summer2024!").status_code for i in range(60)]
    assert codes[:12] == [FAILED[kind]] * 12
    assert set(codes[12:]) == {429}
    # Another client is not affected.
    assert (
        login("user0@tenant-a.localhost", "Summer2024!", REMOTE_ADDR="192.0.2.77").status_code == FAILED[kind]
    )


@pytest.mark.parametrize("kind", ["token", "admin"])
def test_it_answers_429_with_retry_after_and_lets_the_client_in_again_after_the_window(kind, user, clock):
    login = LOGINS[kind]
    for _ in range(5):
        assert login(user.username, "wrong").status_code == FAILED[kind]
    refused = login(user.username, PASSWORD)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 2 * LIMITS["LOGIN_FAILURE_WINDOW_SECONDS"]
    clock.now += int(refused["Retry-After"])
    response = login(user.username, PASSWORD)
    assert admin_succeeded(response) if kind == "admin" else response.status_code == 200


@pytest.mark.parametrize("kind", ["token", "admin"])
def test_it_never_counts_a_successful_login(kind, user):
    login = LOGINS[kind]
    for _ in range(30):
        response = login(user.username, PASSWORD)
        assert admin_succeeded(response) if kind == "admin" else response.status_code == 200


@pytest.mark.parametrize("kind", ["token", "admin"])
def test_it_lets_no_more_than_the_limit_through_when_guesses_arrive_in_parallel(kind, admin_user, settings):
    # The tenant's admin has a real (slow, PBKDF2) password hash: while one thread checks it, the others
    # arrive. Counting each attempt before the password is checked is what keeps them out.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    login, attempts = LOGINS[kind], 14
    start, codes = threading.Barrier(attempts), []

    def guess(i):
        try:
            start.wait(timeout=30)
            codes.append(login(admin_user.username, f"guess-{i}").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(codes) == sorted([FAILED[kind]] * 5 + [429] * (attempts - 5))


def test_it_tells_clients_behind_trusted_proxies_apart_so_an_attacker_cannot_lock_out_a_user(user, settings):
    settings.TRUSTED_PROXIES = "10.0.0.0/8"
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for kind in ("admin", "token"):
        cache.clear()
        login = LOGINS[kind]
        for _ in range(5):
            login(user.username, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.66", **proxy)
        assert login(user.username, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.66", **proxy).status_code == 429
        # The attacker cannot pose as another client: only what our proxy appended counts.
        forged = "198.51.100.7, 203.0.113.66"
        assert login(user.username, PASSWORD, HTTP_X_FORWARDED_FOR=forged, **proxy).status_code == 429
        # The real user, behind the same proxy, signs in.
        response = login(user.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
        assert admin_succeeded(response) if kind == "admin" else response.status_code == 200


def test_it_slows_guessing_of_one_account_from_many_clients_but_never_locks_out_its_known_clients(
    user, settings, clock
):
    settings.TRUSTED_PROXIES = "1"
    home = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert token_login(user.username, PASSWORD, **home).status_code == 200  # the user's own client
    codes = []
    for i in range(40):  # a botnet: four guesses from each of ten addresses
        forwarded = f"203.0.113.{i // 4}"
        codes.append(
            token_login(
                user.username, "wrong", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded
            ).status_code
        )
    assert codes[:20] == [400] * 20
    assert set(codes[20:]) == {429}
    # A client that never signed in to this account waits, even with the right password ...
    stranger = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "192.0.2.200"}
    assert token_login(user.username, PASSWORD, **stranger).status_code == 429
    # ... the user's own client does not, at the admin login either ...
    assert token_login(user.username, PASSWORD, **home).status_code == 200
    assert admin_succeeded(admin_login(user.username, PASSWORD, **home))
    # ... and when the guessing stops, the account is open to every client again.
    clock.now += 2 * LIMITS["LOGIN_FAILURE_WINDOW_SECONDS"]
    assert token_login(user.username, PASSWORD, **stranger).status_code == 200


def test_it_changes_nothing_when_it_refuses(user):
    for _ in range(5):
        token_login(user.username, "wrong")
    user_before = get_user_model().objects.filter(pk=user.pk).values().get()
    assert token_login(user.username, PASSWORD).status_code == 429
    assert not Token.objects.filter(user=user).exists()
    assert get_user_model().objects.filter(pk=user.pk).values().get() == user_before
