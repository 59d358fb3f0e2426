"""S7: a 500 with DEBUG off mails a report and logs an error, and neither holds a credential."""

import logging

import pytest
from django.core import mail
from django.test import Client

from pipelines_ui.accounts.api import WorkspaceViewSet
from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.redaction import redact

DB_PASSWORD, BROKER_PASSWORD, REDIS_PASSWORD = "db-pw-1a2b3c", "broker-pw-4d5e6f", "redis-pw-7g8h"


@pytest.fixture
def failing_view(monkeypatch, settings):
    settings.DEBUG = False
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.DATABASE_URL = f"postgres://pipes:{DB_PASSWORD}@db.example:5432/pipes"
    settings.CELERY_BROKER_URL = f"redis://:{BROKER_PASSWORD}@cache.example:6379/1"
    settings.REDIS_URL = f"redis://:{REDIS_PASSWORD}@cache.example:6379/0"

    def list_(self, request, *args, **kwargs):
        broker = settings.CELERY_BROKER_URL  # a frame variable named like nothing secret
        header = request.headers["Authorization"]
        raise RuntimeError(f"could not reach {broker} for {header}")

    monkeypatch.setattr(WorkspaceViewSet, "list", list_)


def test_a_500_reports_and_logs_no_token_or_password(failing_view, owner, workspace, caplog):
    _, key = ApiToken.issue(workspace, owner, "report", ["read"])
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = client.get("/api/workspaces/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 500
    assert len(mail.outbox) == 1
    report = mail.outbox[0].body
    # The report holds what a person needs: the error, the frame, the settings, the headers.
    assert "could not reach redis://:********************@cache.example" in report
    assert "DATABASE_URL" in report and "HTTP_AUTHORIZATION" in report
    logged = caplog.text
    assert "Internal Server Error: /api/workspaces/" in logged
    assert "could not reach redis://:********************@" in logged
    secret_part = key.rsplit("_", 1)[1]
    for secret in (secret_part, DB_PASSWORD, BROKER_PASSWORD, REDIS_PASSWORD):
        assert secret not in report
        assert secret not in logged


@pytest.mark.parametrize(("text", "expected"), [
    ("postgres://u:pw@db/x", "postgres://u:********************@db/x"),
    ("redis://:pw@cache:6379/0 and amqp://guest:guest@mq//",
     "redis://:********************@cache:6379/0 and amqp://guest:********************@mq//"),
    ("Authorization: Token pui_0a1b2c3d_Zm9v-YmFy", "Authorization: Token ********************"),
    ("key pui_0a1b2c3d_Zm9v-YmFy", "key pui_0a1b2c3d_********************"),
    ("StepToken 9f86d081884c7d65", "StepToken ********************"),
    ("WORKER=pwk_gpu_abc-DEF_123", "WORKER=pwk_gpu_********************"),
    ("https://example.com/path?q=1", "https://example.com/path?q=1"),
    ("user@example.com wrote", "user@example.com wrote"),
])
def test_redact_removes_credentials_and_keeps_the_rest(text, expected):
    assert redact(text) == expected


def test_prose_about_tokens_is_left_alone():
    assert redact("Token authentication failed") == "Token authentication failed"
