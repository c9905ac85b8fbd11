"""Production settings pass ``manage.py check --deploy`` and refuse to start without real secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.utils import get_random_secret_key

ROOT = Path(__file__).resolve().parent.parent


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings.production", "VAR_DIR": str(tmp_path), **env,
    }
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING",
                     SECRET_KEY=get_random_secret_key(), ALLOWED_HOSTS="shop.example.com")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLOWED_HOSTS": "shop.example.com"}, "SECRET_KEY must be set"),
        ({"ALLOWED_HOSTS": "shop.example.com", "SECRET_KEY": "insecure-local-development-key"}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": get_random_secret_key()}, "ALLOWED_HOSTS must list"),
    ],
)
def test_production_settings_refuse_to_start_without_real_secrets(tmp_path, env, message):
    result = _manage(tmp_path, "check", **env)

    assert result.returncode != 0
    assert message in result.stderr


def test_production_turns_on_https_only_cookies_and_hsts(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS >= 31536000, "
        "'whitenoise.middleware.WhiteNoiseMiddleware' in s.MIDDLEWARE)"
    )
    result = _manage(tmp_path, "shell", "-c", code, SECRET_KEY=get_random_secret_key(), ALLOWED_HOSTS="shop.example.com")

    assert result.stdout.strip().splitlines()[-1].split() == ["False", "True", "True", "True", "True", "True"], result.stderr


def test_no_secret_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    assert ".env" not in tracked
    assignment = re.compile(r"""^\s*SECRET_KEY\s*=\s*["'][^"']+["']""", re.MULTILINE)
    offenders = [p for p in tracked if p.endswith(".py") and assignment.search((ROOT / p).read_text(encoding="utf-8", errors="ignore"))]
    assert offenders == []


def test_a_secret_key_starting_with_a_dollar_sign_is_taken_as_it_is(tmp_path):
    # get_random_secret_key() draws from an alphabet with "$": django-environ would read such a
    # value as a reference to another variable.
    key = "$" + get_random_secret_key()[1:]
    code = "from django.conf import settings as s; print(s.SECRET_KEY)"

    result = _manage(tmp_path, "shell", "-c", code, SECRET_KEY=key, ALLOWED_HOSTS="shop.example.com")

    assert result.stdout.strip().splitlines()[-1] == key, result.stderr


def test_a_fresh_checkout_without_a_var_folder_migrates_into_a_new_one(tmp_path):
    # given a checkout where the folder for the database, media and index does not exist yet
    var = tmp_path / "fresh" / "var"
    # when the database is the first thing a command touches (no system check has run to create
    # the file cache's folder on the way), with the default (development) settings
    first_use = "from django.db import connection; connection.ensure_connection(); print('connected')"
    result = _manage(tmp_path, "shell", "-c", first_use, DJANGO_SETTINGS_MODULE="config.settings.base", VAR_DIR=str(var))
    # then the folder and the SQLite database are created
    assert result.returncode == 0, result.stdout + result.stderr
    assert "connected" in result.stdout and (var / "db.sqlite3").is_file()
