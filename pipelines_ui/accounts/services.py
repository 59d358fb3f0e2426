"""Tenancy: which workspaces a user belongs to, and which one they are working in.

Every page, API view and WebSocket consumer starts from these helpers, so a workspace the user
does not belong to is simply not there (a 404, never a 403 that confirms it exists).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone

from pipelines_ui.accounts.models import ApiToken, Membership, Workspace

SESSION_KEY = "workspace_id"


def member_workspaces(user) -> QuerySet[Workspace]:
    if not user or not user.is_authenticated:
        return Workspace.objects.none()
    return Workspace.objects.filter(memberships__user=user)


def membership(user, workspace_id: int) -> Membership | None:
    if not user or not user.is_authenticated:
        return None
    return (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace_id=workspace_id)
        .first()
    )


def current_workspace(request: HttpRequest) -> Workspace | None:
    """The workspace chosen in the switcher, else the user's first one."""
    workspaces = member_workspaces(request.user)
    chosen = request.session.get(SESSION_KEY)
    workspace = workspaces.filter(pk=chosen).first() if chosen else None
    return workspace or workspaces.order_by("name").first()


def switch_workspace(request: HttpRequest, workspace_id: int) -> Workspace:
    workspace = member_workspaces(request.user).filter(pk=workspace_id).first()
    if workspace is None:
        raise Http404("No such workspace.")
    request.session[SESSION_KEY] = workspace.pk
    return workspace


# --- API tokens ------------------------------------------------------------------------------

KEY_PREFIX = "pui_"
# last_used_at is a hint for people, not an audit log: one write a minute per token is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenRejected(Exception):
    """The key is malformed, unknown, wrong, expired or revoked; the text says which."""


def caller_workspaces(user, token: ApiToken | None = None) -> QuerySet[Workspace]:
    """The workspaces a request may reach: the user's, narrowed to the token's own for tokens."""
    workspaces = member_workspaces(user)
    if token is not None:
        workspaces = workspaces.filter(pk=token.workspace_id)
    return workspaces


def authenticate_token(key: str) -> ApiToken:
    """The active token behind `key` (`pui_<prefix>_<secret>`), or TokenRejected."""
    prefix_end = len(KEY_PREFIX) + ApiToken.PREFIX_LENGTH
    if not key.startswith(KEY_PREFIX) or key[prefix_end:prefix_end + 1] != "_":
        raise TokenRejected("Malformed token; keys look like pui_<prefix>_<secret>.")
    prefix, secret = key[len(KEY_PREFIX):prefix_end], key[prefix_end + 1:]
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not token.matches(secret):
        raise TokenRejected("Invalid token.")
    if token.revoked_at is not None:
        raise TokenRejected("This token was revoked.")
    if not token.is_active:
        raise TokenRejected("This token has expired.")
    if not token.user.is_active:
        raise TokenRejected("The token's user is deactivated.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def issue_token(workspace: Workspace, user, *, name: str, scopes: list[str],
                expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token and its key; the key is returned this once and never stored."""
    return ApiToken.issue(workspace, user, name, sorted(set(scopes)), expires_at)


def revoke_token(token: ApiToken) -> ApiToken:
    """Takes effect on the token's next request (idempotent)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
