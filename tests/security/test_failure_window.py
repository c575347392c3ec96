"""The failed-login window shared by the token endpoint and the admin login (core.throttling)."""

from django.core.cache import cache

from core.throttling import FailureWindow


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_it_refuses_after_the_limit_until_the_oldest_failure_leaves_the_window(tenant):
    cache.clear()
    clock = Clock()
    window = FailureWindow(scope="test", limit=3, seconds=60, clock=clock)
    for _ in range(3):
        assert window.retry_after("10.0.0.1", "ann@example.com") == 0
        window.record("10.0.0.1", "ann@example.com")
        clock.now += 10
    assert window.retry_after("10.0.0.1", "ann@example.com") == 31  # the first failure ages out at +60
    clock.now += 31
    assert window.retry_after("10.0.0.1", "ann@example.com") == 0
    cache.clear()


def test_it_counts_a_username_whatever_its_case_and_spaces(tenant):
    cache.clear()
    window = FailureWindow(scope="test", limit=2, seconds=60)
    window.record("10.0.0.1", "Ann@Example.com")
    window.record("10.0.0.1", "  ann@example.com ")
    assert window.retry_after("10.0.0.1", "ANN@EXAMPLE.COM") > 0
    assert window.retry_after("10.0.0.2", "ann@example.com") == 0  # another address
    assert window.retry_after("10.0.0.1", "bob@example.com") == 0  # another username
    cache.clear()


def test_the_token_endpoint_answers_429_with_retry_after_and_a_success_is_not_a_failure(
    anon_api, admin_user, settings
):
    from tests.conftest import PASSWORD

    cache.clear()
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth_failures"].split("/")[0])
    for _ in range(limit - 1):
        assert (
            anon_api.post("/api/auth/token", {"username": admin_user.username, "password": "x"}).status_code
            == 400
        )
    ok = anon_api.post("/api/auth/token", {"username": admin_user.username, "password": PASSWORD})
    assert ok.status_code == 200 and ok.json()["token"]
    padded = f"  {admin_user.username.upper()} "
    assert anon_api.post("/api/auth/token", {"username": padded, "password": "x"}).status_code == 400
    refused = anon_api.post("/api/auth/token", {"username": admin_user.username, "password": PASSWORD})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    cache.clear()
