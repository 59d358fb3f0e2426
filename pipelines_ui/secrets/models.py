"""Workspace secrets: named values a step receives when its node declares them (S6, S7).

A value goes in through the API and out only in the StepJob of a step that declared its name;
it is never shown again (the API field is write-only, the admin does not list it). Workers
mask every declared value in the step's output before it leaves the machine. The database
holds it encrypted with the server's keys (keys.py, S17).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from pipelines_ui.accounts.models import Workspace
from pipelines_ui.secrets import keys


class SecretUnreadable(Exception):
    """A stored value that none of the server's keys decrypts."""


class Secret(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=128)  # an environment variable name (runner.spec)
    # A Fernet token, never the value itself: read and set `value`.
    encrypted_value = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="secret_name_unique")
        ]

    @property
    def value(self) -> str:
        try:
            return keys.decrypt(self.encrypted_value)
        except keys.InvalidToken:
            raise SecretUnreadable(
                f"secret {self.name!r} of workspace {self.workspace_id} cannot be decrypted "
                f"with the server's {keys.KEY_VARIABLE}: it was stored under a key no longer "
                "listed. Put that key back in the list, or set the secret's value again."
            ) from None

    @value.setter
    def value(self, value: str) -> None:
        self.encrypted_value = keys.encrypt(value)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # never the value, not even in a debugger or an error report
        return f"<Secret {self.name} of workspace {self.workspace_id}>"
