"""The failed-login windows shared by the token endpoint and the admin login (core.throttling)."""

import threading

import pytest
from django.core.cache import cache, caches
from redis.exceptions import ConnectionError as RedisConnectionError

from core import throttling
from core.throttling import LoginAttempt


class Clock:
    def __init__(self):
        self.now = 1_000_200.0  # the start of a 600 s window

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def empty_cache(tenant):
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(throttling, "clock", fake)
    return fake


@pytest.fixture
def limits(settings):
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 600
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_MAX_FAILURES_PER_CLIENT = 6
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 9
    return settings


def test_it_admits_the_limit_then_slides_the_failures_out_of_the_window(limits, clock):
    def attempt():
        return LoginAttempt.begin(username="ann@example.com", client="10.0.0.1").retry_after

    assert [attempt() for _ in range(3)] == [0, 0, 0]
    assert attempt() == 800  # the next window starts in 600 s, and 2/3 of it must pass
    # Next window: the three weigh by how much of their window still overlaps the last 600 s.
    clock.now += 600
    assert attempt() == 200  # at 1/3 in, 3 * 2/3 + 1 fits under 3 again
    clock.now += 200
    assert attempt() == 0
    assert attempt() > 0


def test_it_counts_a_username_whatever_its_case_and_spaces(limits, clock):
    for name in ("Ann@Example.com", "  ann@example.com ", "ANN@EXAMPLE.COM"):
        assert LoginAttempt.begin(username=name, client="10.0.0.1").retry_after == 0
    assert LoginAttempt.begin(username="ann@example.com", client="10.0.0.1").retry_after > 0
    assert (
        LoginAttempt.begin(username="ann@example.com", client="10.0.0.2").retry_after == 0
    )  # another client
    assert (
        LoginAttempt.begin(username="bob@example.com", client="10.0.0.1").retry_after == 0
    )  # another account


def test_it_refunds_a_success_and_a_refusal(limits, clock):
    for _ in range(10):
        LoginAttempt.begin(username="ann@example.com", client="10.0.0.1").succeeded()
    for _ in range(3):
        assert LoginAttempt.begin(username="ann@example.com", client="10.0.0.1").retry_after == 0
    for _ in range(10):  # refused attempts check no password and add nothing
        assert LoginAttempt.begin(username="ann@example.com", client="10.0.0.1").retry_after > 0
    clock.now += 600 + 200
    assert LoginAttempt.begin(username="ann@example.com", client="10.0.0.1").retry_after == 0


@pytest.fixture(params=["redis", "locmem"])
def any_cache(request, settings):
    """The Redis cache (one Lua step), and a cache without scripts (development without Redis: a lock)."""
    if request.param == "locmem":
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "KEY_FUNCTION": "django_tenants.cache.make_key",
            }
        }
    return request.param


def test_it_counts_each_of_many_simultaneous_attempts_exactly_once(limits, clock, any_cache):
    admitted, start = [], threading.Barrier(24)

    def attempt():
        start.wait(timeout=30)
        admitted.append(LoginAttempt.begin(username="ann@example.com", client="10.0.0.1").retry_after == 0)

    threads = [threading.Thread(target=attempt) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(admitted) == [False] * 21 + [True] * 3


def test_it_lets_logins_through_when_the_cache_is_down(limits, clock, monkeypatch):
    def down(*args, **kwargs):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(caches["default"]._cache, "get_client", down)
    for _ in range(10):
        assert LoginAttempt.begin(username="ann@example.com", client="10.0.0.1").retry_after == 0
