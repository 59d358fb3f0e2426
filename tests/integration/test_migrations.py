"""Migrations match the models and apply on both SQLite and PostgreSQL."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


def manage(*args, **env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")}
    base.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=180)


def test_the_migrations_match_the_models(tmp_path):
    result = manage("makemigrations", "--check", "--dry-run", PIPELINES_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_migrations_apply_on_sqlite(tmp_path):
    result = manage("migrate", PIPELINES_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "db.sqlite3").exists()


def test_the_migrations_apply_on_postgresql(tmp_path):
    name = f"pipelines_migrate_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
            result = manage("migrate", DATABASE_URL=url, PIPELINES_VAR_DIR=str(tmp_path))
            assert result.returncode == 0, result.stderr
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
