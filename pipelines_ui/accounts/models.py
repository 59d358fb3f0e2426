"""Workspaces, who belongs to them with which role, and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class Workspace(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"  # reads everything in the workspace
    EDITOR = "editor", "Editor"  # also authors, runs and publishes
    ADMIN = "admin", "Admin"  # also manages members, compute, datastores and tokens


ROLE_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    def allows(self, role: str) -> bool:
        """True when this membership's role is at least `role`."""
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


def hash_secret(secret: str) -> str:
    return hashlib.sha512(secret.encode()).hexdigest()


class TokenScope(models.TextChoices):
    READ = "read", "Read everything in the workspace"
    RUN = "run", "Start and cancel runs"
    PUBLISH = "publish", "Author, publish and manage endpoints"
    INVOKE = "endpoint:invoke", "Invoke published endpoints"


class ApiToken(models.Model):
    """A key for scripts and other systems: shown once, stored as a SHA-512 hash.

    The key reads `pui_<prefix>_<secret>`; the prefix finds the row, the secret is compared
    with `hmac.compare_digest` against its hash.
    """

    PREFIX_LENGTH = 10

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    secret_hash = models.CharField(max_length=128)
    # Scopes such as "read", "run", "publish", "endpoint:invoke" or "endpoint:invoke:<name>".
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(
        cls,
        workspace: Workspace,
        user,
        name: str,
        scopes: list[str],
        expires_at: datetime | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token; returns the row and the key, which is never stored."""
        prefix = secrets.token_hex(cls.PREFIX_LENGTH // 2)
        secret = secrets.token_urlsafe(32)
        token = cls.objects.create(
            workspace=workspace, user=user, name=name, prefix=prefix,
            secret_hash=hash_secret(secret), scopes=scopes, expires_at=expires_at,
        )
        return token, f"pui_{prefix}_{secret}"

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, hash_secret(secret))

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()

    def has_scope(self, scope: str) -> bool:
        """`endpoint:invoke` grants every endpoint; `endpoint:invoke:<name>` one of them."""
        if scope in self.scopes:
            return True
        if scope.startswith("endpoint:invoke:"):
            return "endpoint:invoke" in self.scopes
        return False
