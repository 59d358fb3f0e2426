"""Tenancy: which workspaces a user belongs to, and which one they are working in.

Every page, API view and WebSocket consumer starts from these helpers, so a workspace the user
does not belong to is simply not there (a 404, never a 403 that confirms it exists).
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from pipelines_ui.accounts.models import Membership, Workspace

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
