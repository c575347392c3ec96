"""No Docker engine runs in CI, so the deployment files are checked as data."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_SOURCE = (ROOT / "crm_project" / "settings.py").read_text()
SETTINGS_VARS = set(re.findall(r'env(?:_bool|_list)?\(\s*"([A-Z][A-Z0-9_]+)"', SETTINGS_SOURCE))


def _env_example():
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip().lstrip("#").strip()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            names.add(line.split("=", 1)[0])
    return names


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_it_finds_the_settings_variables():
    assert {
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "EVENTS_BROKER_URL",
        "MAIL_MAILER",
        "APP_URL",
    } <= SETTINGS_VARS


def test_it_lists_every_variable_the_settings_read_in_env_example():
    assert SETTINGS_VARS - _env_example() == set()


def test_it_names_every_service_in_compose():
    services = _compose()["services"]
    assert {
        "postgres",
        "redis",
        "rabbitmq",
        "mailpit",
        "web",
        "worker",
        "beat",
        "migrate",
        "webshop-consumer",
    } <= set(services)
    assert services["web"]["command"].startswith("gunicorn crm_project.wsgi")
    assert services["worker"]["command"].startswith("celery -A crm_project worker")
    assert services["beat"]["command"].startswith("celery -A crm_project beat")
    assert "migrate" in services["migrate"]["command"] and "seed_demo" in services["migrate"]["command"]


def test_it_passes_every_setting_to_the_app_containers():
    services = _compose()["services"]
    for name in ("web", "worker", "beat", "migrate", "webshop-consumer"):
        service = services[name]
        env_files = [entry["path"] if isinstance(entry, dict) else entry for entry in service["env_file"]]
        assert ".env.example" in env_files, name  # every variable, with its documented default
        environment = service["environment"]
        for var in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EVENTS_BROKER_URL", "EMAIL_HOST"):
            assert var in environment, (name, var)
        assert "@postgres:" in environment["DATABASE_URL"] and "redis://redis" in environment["REDIS_URL"]
        assert "@rabbitmq:" in environment["EVENTS_BROKER_URL"] and environment["EMAIL_HOST"] == "mailpit"
