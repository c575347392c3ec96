import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "APP_ENV"}}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_to_start_in_production_with_the_default_secret_key():
    result = _manage("check", APP_ENV="production", DEBUG="false")
    assert result.returncode != 0
    assert "refuses to start" in result.stderr


def test_it_refuses_to_start_in_production_with_debug_on():
    result = _manage("check", APP_ENV="production", DEBUG="true", SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode != 0
    assert "refuses to start" in result.stderr


def test_it_passes_the_deploy_checks_with_production_settings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        "--tag",
        "security",
        APP_ENV="production",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=".example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
