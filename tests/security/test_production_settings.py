"""APP_ENV=production, started for real in a subprocess: what it refuses, what it accepts and turns on."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.core.management.utils import get_random_secret_key

from crm_project.production import secret_key_problem
from tenancy.models import Tenant

ROOT = Path(__file__).resolve().parents[2]
# What the process gets from outside; everything else of the test run's environment is kept.
OWN = {"APP_ENV", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "APP_URL", "PUBLIC_DOMAIN", "SECURE_SSL_REDIRECT"}
GOOD = {
    "APP_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": ".crm.example.com",
    "APP_URL": "https://crm.example.com",
}
SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({k: "
    "getattr(s, k, None) for k in ('DEBUG', 'ALLOWED_HOSTS', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
    "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT', 'SECRET_KEY', "
    "'PUBLIC_DOMAIN')}))"
)


def _start(*args, **env):
    """`python -c` that sets Django up (and shows settings), or `manage.py <args>`, with `env` set."""
    full_env = {k: v for k, v in os.environ.items() if k not in OWN}
    full_env.update(env, DJANGO_SETTINGS_MODULE="crm_project.settings")
    command = [sys.executable, "manage.py", *args] if args else [sys.executable, "-c", SHOW]
    return subprocess.run(command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120)


def _settings(**env):
    result = _start(**env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _refusal(**env):
    result = _start(**env)
    assert result.returncode != 0
    assert "APP_ENV=production refuses to start:" in result.stderr
    return result.stderr[result.stderr.index("APP_ENV=production refuses") :]


def test_it_starts_in_production_with_sound_settings_and_turns_on_secure_cookies_and_hsts():
    shown = _settings(**GOOD)

    assert shown["DEBUG"] is False
    assert shown["ALLOWED_HOSTS"] == [".crm.example.com"]
    assert shown["PUBLIC_DOMAIN"] == "crm.example.com"
    assert shown["SESSION_COOKIE_SECURE"] is True and shown["CSRF_COOKIE_SECURE"] is True
    assert shown["SECURE_HSTS_SECONDS"] == 31536000 and shown["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert shown["SECURE_SSL_REDIRECT"] is True


def test_development_keeps_the_known_key_any_host_and_plain_cookies_even_from_a_blank_env_file():
    # A copy of .env.example used by `make run` (which sets APP_ENV=development) leaves these blank.
    shown = _settings(APP_ENV="development", SECRET_KEY="", ALLOWED_HOSTS="", APP_URL="", DEBUG="")

    assert shown["DEBUG"] is True
    assert shown["SECRET_KEY"] == "dev-insecure-change-me"
    assert shown["ALLOWED_HOSTS"] == ["*"]
    assert shown["PUBLIC_DOMAIN"] == "localhost"
    assert shown["SESSION_COOKIE_SECURE"] is False and shown["CSRF_COOKIE_SECURE"] is False
    assert shown["SECURE_HSTS_SECONDS"] == 0 and shown["SECURE_SSL_REDIRECT"] is False


def test_it_refuses_to_start_with_nothing_set_and_says_everything_that_is_missing():
    message = _refusal(APP_ENV="production")

    assert "SECRET_KEY is not set. Generate one with: python -c" in message
    assert "ALLOWED_HOSTS is not set." in message and "ALLOWED_HOSTS=.crm.example.com" in message
    assert "APP_URL is 'http://localhost:8012': production serves https only" in message


@pytest.mark.parametrize(
    ("secret_key", "said"),
    [
        ("", "SECRET_KEY is not set"),
        ("short-but-random-" + secrets.token_urlsafe(8), "SECRET_KEY has 28 characters; at least 50"),
        ("change-me-to-a-long-random-string-of-50-characters", "placeholder (it contains 'changeme')"),
        ("django-insecure-" + get_random_secret_key(), "placeholder (it contains 'insecure')"),
        ("dev-insecure-change-me", "placeholder"),
        ("ab" * 30, "low in entropy: 2 distinct characters"),
        ("0123456789" * 6, "low in entropy: it repeats a short pattern"),
        ("a" * 45 + "bcdefghijk", "low in entropy: about"),
    ],
    # Named, not by their random keys: parallel test processes must collect the same tests.
    ids=[
        "missing",
        "short",
        "changeme",
        "django-insecure",
        "dev-insecure",
        "two-characters",
        "pattern",
        "low-entropy",
    ],
)
def test_it_refuses_a_missing_short_placeholder_or_low_entropy_secret_key(secret_key, said):
    message = _refusal(**{**GOOD, "SECRET_KEY": secret_key})

    assert said in message
    assert len(message.strip().splitlines()) == 2  # the key is the only problem


@pytest.mark.parametrize(
    "secret_key",
    [
        "change-me-to-a-long-random-string-of-50-characters",
        "changeme",
        "CHANGE_ME_" + secrets.token_hex(30),
        "django-insecure-" + get_random_secret_key(),
        "your-secret-key-" + secrets.token_urlsafe(40),
        "x" * 64,
        "abc" * 20,
        "qwertyuiop" * 6,
    ],
    ids=[
        "changeme-long",
        "changeme",
        "CHANGE_ME",
        "django-insecure",
        "your-secret-key",
        "x",
        "abc",
        "qwerty",
    ],
)
def test_it_names_known_placeholders_and_weak_keys(secret_key):
    assert secret_key_problem(secret_key) is not None


@pytest.mark.parametrize(
    "secret_key",
    [secrets.token_urlsafe(50), get_random_secret_key(), secrets.token_hex(32), secrets.token_hex(25)],
    ids=["token_urlsafe(50)", "get_random_secret_key()", "token_hex(32)", "token_hex(25)"],
)
def test_it_accepts_keys_made_the_usual_ways(secret_key):
    assert secret_key_problem(secret_key) is None


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is not set."),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS contains '*': a wildcard lets any Host header in"),
        ({"ALLOWED_HOSTS": "*.crm.example.com"}, "ALLOWED_HOSTS contains '*.crm.example.com'"),
        ({"ALLOWED_HOSTS": ".other.example"}, "APP_URL's host 'crm.example.com' is not in ALLOWED_HOSTS"),
        (
            {"APP_URL": "http://crm.example.com"},
            "APP_URL is 'http://crm.example.com': production serves https",
        ),
        ({"PUBLIC_DOMAIN": "ops.example.net"}, "PUBLIC_DOMAIN 'ops.example.net' is not in ALLOWED_HOSTS"),
        ({"DEBUG": "true"}, "DEBUG is on: set DEBUG=false"),
    ],
)
def test_it_refuses_hosts_urls_and_debug_that_production_must_not_run_with(env, said):
    message = _refusal(**{**GOOD, **env})

    assert said in message


def test_it_accepts_the_tenants_own_domains_beside_the_sub_domains():
    shown = _settings(**{**GOOD, "ALLOWED_HOSTS": ".crm.example.com, shop.acme.example"})

    assert shown["ALLOWED_HOSTS"] == [".crm.example.com", "shop.acme.example"]


def test_it_refuses_an_app_env_it_does_not_know_instead_of_running_as_development():
    result = _start(**{**GOOD, "APP_ENV": "prod"})

    assert result.returncode != 0
    assert "APP_ENV must be development or production, not 'prod'." in result.stderr


def test_it_passes_the_deploy_checks_with_production_settings():
    result = _start("check", "--deploy", "--fail-level", "WARNING", "--tag", "security", **GOOD)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_seed_demo_refuses_in_production_and_creates_nothing(db, settings):
    settings.PRODUCTION = True

    with pytest.raises(CommandError, match="runs only with APP_ENV=development"):
        call_command("seed_demo", "--slug", "demo-prod", "--domain", "demo-prod.localhost")

    assert not Tenant.objects.filter(schema_name="demo_prod").exists()
