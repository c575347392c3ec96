"""No Docker engine runs in CI, so the deployment files are checked as data, and the settings they
produce are started for real (in a subprocess, as a container would)."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_SOURCE = (ROOT / "crm_project" / "settings.py").read_text()
SETTINGS_VARS = set(re.findall(r'env(?:_bool|_list)?\(\s*"([A-Z][A-Z0-9_]+)"', SETTINGS_SOURCE))
APP_SERVICES = ("web", "worker", "beat", "migrate", "webshop-consumer")


def _env_file(path):
    """`NAME=value` lines as docker compose reads an env_file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            name, value = line.split("=", 1)
            values[name] = value
    return values


def _env_example_names():
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip().lstrip("#").strip()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            names.add(line.split("=", 1)[0])
    return names


def _compose(name="docker-compose.yml"):
    return yaml.safe_load((ROOT / name).read_text())


def _published_ports(compose):
    return {name: service.get("ports", []) for name, service in compose["services"].items()}


def _container_env(service, user_env=None):
    """The environment compose gives `service`: .env.example, then the user's .env, then `environment`."""
    env = dict(_env_file(ROOT / ".env.example"))
    env.update(user_env or {})
    env.update({key: str(value) for key, value in _compose()["services"][service]["environment"].items()})
    return env


def _start_settings(env):
    """Start the settings as the container would: only its environment (plus the interpreter's needs)."""
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.APP_ENV, s.DEBUG, s.ALLOWED_HOSTS, s.SESSION_COOKIE_SECURE, s.SECURE_HSTS_SECONDS]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**keep, **env, "DJANGO_SETTINGS_MODULE": "crm_project.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_finds_the_settings_variables():
    assert {
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "EVENTS_BROKER_URL",
        "MAIL_MAILER",
        "APP_URL",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
    } <= SETTINGS_VARS


def test_it_lists_every_variable_the_settings_read_in_env_example():
    assert SETTINGS_VARS - _env_example_names() == set()


def test_it_names_every_service_in_compose():
    services = _compose()["services"]
    assert {"postgres", "redis", "rabbitmq", "web", "worker", "beat", "migrate", "webshop-consumer"} <= set(
        services
    )
    assert services["web"]["command"].startswith("gunicorn crm_project.wsgi")
    assert services["worker"]["command"].startswith("celery -A crm_project worker")
    assert services["beat"]["command"].startswith("celery -A crm_project beat")
    assert services["migrate"]["command"] == "python manage.py migrate --noinput"


def test_it_runs_every_app_container_in_production_with_the_users_env_file():
    services = _compose()["services"]
    for name in APP_SERVICES:
        service = services[name]
        env_files = [entry["path"] if isinstance(entry, dict) else entry for entry in service["env_file"]]
        assert env_files == [".env.example", ".env"], name  # the user's values win over the examples
        environment = service["environment"]
        assert (environment["APP_ENV"], environment["DEBUG"]) == ("production", "false"), name
        # Secrets and hosts come from the user's .env only, never from the compose file.
        assert not {"SECRET_KEY", "ALLOWED_HOSTS", "APP_URL", "PUBLIC_DOMAIN"} & set(environment), name
        assert "@postgres:" in environment["DATABASE_URL"] and "redis://redis" in environment["REDIS_URL"]
        assert "@rabbitmq:" in environment["EVENTS_BROKER_URL"]


def test_it_seeds_no_demo_data_by_default():
    text = (ROOT / "docker-compose.yml").read_text()
    commands = " ".join(str(service.get("command", "")) for service in _compose()["services"].values())

    assert "seed_demo" not in commands
    assert "demo-admin-2024" not in text


def test_it_publishes_only_the_web_port_on_loopback_by_default():
    compose = _compose()

    published = {name: ports for name, ports in _published_ports(compose).items() if ports}
    assert published == {"web": ["127.0.0.1:8012:8012"]}
    assert "management" not in compose["services"]["rabbitmq"]["image"]
    assert "mailpit" not in compose["services"]


def test_the_env_example_is_production_shaped_with_nothing_secret_in_it():
    values = _env_file(ROOT / ".env.example")
    text = (ROOT / ".env.example").read_text()

    assert values["APP_ENV"] == "production"
    assert values["DEBUG"].lower() not in {"1", "true", "yes", "on"}
    assert values["SECRET_KEY"] == "" and values["ALLOWED_HOSTS"] == ""
    assert "ALLOWED_HOSTS=.crm.example.com" in text  # the leading-dot form for the tenants' sub-domains


def test_the_default_compose_refuses_to_start_until_the_user_sets_key_hosts_and_url():
    result = _start_settings(_container_env("web"))

    assert result.returncode != 0
    assert "APP_ENV=production refuses to start:" in result.stderr
    for said in ("SECRET_KEY is not set", "ALLOWED_HOSTS is not set", "APP_URL is 'http://localhost:8012'"):
        assert said in result.stderr


def test_the_default_compose_starts_in_production_once_the_env_file_is_filled_in():
    user_env = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "APP_URL": "https://crm.example.com",
        "ALLOWED_HOSTS": ".crm.example.com",
    }

    result = _start_settings(_container_env("web", user_env))

    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "production",
        False,
        [".crm.example.com"],
        True,
        31536000,
    ]


def test_the_dev_override_brings_the_demo_tenant_debug_and_the_management_uis():
    dev = _compose("docker-compose.dev.yml")["services"]

    assert "seed_demo" in dev["migrate"]["command"] and "migrate --noinput" in dev["migrate"]["command"]
    for name in APP_SERVICES:
        assert dev[name]["environment"]["APP_ENV"] == "development", name
    assert dev["rabbitmq"]["ports"] == ["127.0.0.1:15672:15672"]
    assert dev["mailpit"]["ports"] == ["127.0.0.1:8025:8025"]
    assert dev["web"]["environment"]["EMAIL_HOST"] == "mailpit"


def test_the_image_runs_as_an_unprivileged_user_in_production_without_local_secrets():
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()

    assert "USER app" in dockerfile
    assert dockerfile.index("USER app") < dockerfile.index("CMD ")
    assert "ENV APP_ENV=production" in dockerfile
    assert {".env", ".env.*", "!.env.example", "var/", ".venv"} <= set(ignored)
