"""Deployment checks of our own, beside Django's `check --deploy` (docs/reliability.md S1)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register


@register(deploy=True)
def check_allowed_hosts(app_configs, **kwargs):
    if not settings.DEBUG and "*" in settings.ALLOWED_HOSTS:
        return [
            Error(
                "ALLOWED_HOSTS contains '*'.",
                hint="Name the hosts: '*' also disables the WebSocket origin check.",
                id="pipelines_ui.E001",
            )
        ]
    return []


@register(deploy=True)
def check_service_passwords(app_configs, **kwargs):
    problems = []
    for name in ("CELERY_BROKER_URL", "REDIS_URL"):
        url = getattr(settings, name, "") or ""
        parts = urlsplit(url)
        if parts.scheme in ("redis", "rediss", "amqp", "amqps") and not parts.password:
            problems.append(
                Warning(
                    f"{name} has no password.",
                    hint="Protect the broker and Redis with a password in production.",
                    id="pipelines_ui.W001",
                )
            )
    return problems
