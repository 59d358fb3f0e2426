"""Deployment checks of our own, beside Django's `check --deploy` (docs/reliability.md S1)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register

from pipelines_ui.secrets.keys import KEY_VARIABLE, keys_problem


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


@register(deploy=True)
def check_secrets_key(app_configs, **kwargs):
    """Workspace secrets are encrypted at rest (S17): without a usable key none can be stored,
    and a step that declares one fails."""
    problem = keys_problem()
    if problem is None:
        return []
    return [
        Error(
            problem,
            hint=f"Set {KEY_VARIABLE} to a key of Fernet.generate_key() (cryptography), the "
                 "same on every server process; to rotate, list the new key first.",
            id="pipelines_ui.E017",
        )
    ]
