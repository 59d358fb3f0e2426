"""The one settings module picks each backend from the environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROBE = (
    "import json, django; from django.conf import settings; django.setup();"
    "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'],"
    " 'db_name': str(settings.DATABASES['default']['NAME']),"
    " 'wal': settings.DATABASES['default'].get('OPTIONS', {}).get('init_command', ''),"
    " 'broker': settings.CELERY_BROKER_URL,"
    " 'transport': settings.CELERY_BROKER_TRANSPORT_OPTIONS,"
    " 'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], 'redis': settings.REDIS_URL,"
    " 'datastore': settings.DATASTORE_URL, 'debug': settings.DEBUG,"
    " 'hosts': settings.ALLOWED_HOSTS}))"
)
SERVICE_VARS = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DATASTORE_URL", "DEBUG",
                "ALLOWED_HOSTS", "SECRET_KEY", "HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE",
                "PIPELINES_SECRETS_KEY")


def settings_with(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    base.update({"PIPELINES_VAR_DIR": str(tmp_path / "var"),
                 "DJANGO_SETTINGS_MODULE": "pipelines_ui.settings", **env})
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=base,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result, json.loads(result.stdout)


def test_nothing_set_runs_embedded_under_var(tmp_path):
    _, found = settings_with(tmp_path)
    var = tmp_path / "var"
    assert found["db"] == "django.db.backends.sqlite3"
    assert found["db_name"] == str(var / "db.sqlite3")
    assert "journal_mode=WAL" in found["wal"]
    socket = var / "run" / "valkey.sock"  # the embedded Valkey of `make up`
    password = (var / "run" / "valkey.key").read_text().strip()  # kept there, for all
    assert found["broker"] == f"redis+socket://:{password}@{socket}?virtual_host=1"
    assert found["transport"] == {"visibility_timeout": 8 * 3600}
    assert found["layer"] == "channels_redis.core.RedisChannelLayer"
    assert found["redis"] == f"unix://:{password}@{socket}?db=0"
    assert found["datastore"] == (var / "datastore").as_uri()
    assert found["debug"] is False


def test_urls_select_postgres_redis_and_the_datastore(tmp_path):
    _, found = settings_with(
        tmp_path, DATABASE_URL="postgres://u:p@db.example:5432/pipes",
        CELERY_BROKER_URL="redis://:pw@cache.example:6379/1",
        REDIS_URL="redis://:pw@cache.example:6379/0", DATASTORE_URL="s3://bucket/prefix",
        ALLOWED_HOSTS="pipes.example.com,other.example",
    )
    assert found["db"] == "django.db.backends.postgresql"
    assert found["db_name"] == "pipes"
    assert found["broker"] == "redis://:pw@cache.example:6379/1"
    assert found["transport"] == {"visibility_timeout": 8 * 3600}
    assert found["layer"] == "channels_redis.core.RedisChannelLayer"
    assert found["datastore"] == "s3://bucket/prefix"
    assert found["hosts"] == ["pipes.example.com", "other.example"]


def test_a_bad_boolean_fails_loudly(tmp_path):
    base = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    base.update({"PIPELINES_VAR_DIR": str(tmp_path), "DEBUG": "maybe"})
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=base,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def deploy_check(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    base.update({"PIPELINES_VAR_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=base, capture_output=True, text=True, timeout=60,
    )


PRODUCTION = {
    "DEBUG": "0", "HTTPS": "1", "SECRET_KEY": "x7" * 30 + "-production-secret-key-for-tests",
    "ALLOWED_HOSTS": "pipes.example.com",
    "CELERY_BROKER_URL": "redis://:secret@cache.example:6379/1",
    "REDIS_URL": "redis://:secret@cache.example:6379/0",
    "PIPELINES_SECRETS_KEY": "bmV3LWtleS0zMi1ieXRlcy1mb3ItdGhlLXRlc3RzLi4=,"
                             "b2xkLWtleS0zMi1ieXRlcy1mb3ItdGhlLXRlc3RzLi4=",
}


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = deploy_check(tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_check_fails_on_the_embedded_defaults(tmp_path):
    result = deploy_check(tmp_path)
    assert result.returncode != 0
    assert "security.W009" in result.stderr  # the default SECRET_KEY


def test_the_deploy_check_refuses_a_wildcard_host(tmp_path):
    result = deploy_check(tmp_path, **{**PRODUCTION, "ALLOWED_HOSTS": "*"})
    assert "pipelines_ui.E001" in result.stderr


def test_the_deploy_check_flags_a_broker_without_password(tmp_path):
    env = {**PRODUCTION, "CELERY_BROKER_URL": "redis://cache.example:6379/1"}
    result = deploy_check(tmp_path, **env)
    assert "pipelines_ui.W001" in result.stderr
    assert "CELERY_BROKER_URL has no password" in result.stderr


def test_the_deploy_check_flags_a_missing_or_malformed_secrets_key(tmp_path):
    missing = deploy_check(tmp_path, **{**PRODUCTION, "PIPELINES_SECRETS_KEY": ""})
    assert "pipelines_ui.E017" in missing.stderr
    assert "PIPELINES_SECRETS_KEY is not set" in missing.stderr
    malformed = deploy_check(tmp_path, **{**PRODUCTION, "PIPELINES_SECRETS_KEY":
                                          PRODUCTION["PIPELINES_SECRETS_KEY"] + ",not-a-key"})
    assert "pipelines_ui.E017" in malformed.stderr
    assert "Key 3 of PIPELINES_SECRETS_KEY is not a Fernet key" in malformed.stderr
    assert "not-a-key" not in malformed.stderr  # a key is never quoted


def test_the_secrets_key_is_read_from_var_when_the_environment_names_none(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secrets.key").write_text(PRODUCTION["PIPELINES_SECRETS_KEY"] + "\n")
    assert deploy_check(tmp_path, **{**PRODUCTION, "PIPELINES_SECRETS_KEY": ""}).returncode == 0


def test_the_secret_key_is_read_from_var_when_the_environment_names_none(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret.key").write_text("k" * 50 + "\n")
    probe = "import django; from django.conf import settings; print(settings.SECRET_KEY)"
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env.update({"PIPELINES_VAR_DIR": str(tmp_path / "var"),
                "DJANGO_SETTINGS_MODULE": "pipelines_ui.settings"})
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "k" * 50
