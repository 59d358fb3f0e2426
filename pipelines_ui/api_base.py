"""What every viewset of the REST API shares: who may do what, paging, filters, strict input.

Access has three layers, each in one place:

- **Authentication** (settings.REST_FRAMEWORK): an API token, else the browser's session.
- **Tenancy**: every queryset starts from `workspaces(request)`, the caller's workspaces (only
  the token's own for a token). Anything else is simply not found: 404, never 403.
- **Permission** (`WorkspaceAccess`): token callers need the scope of the operation (`read` for
  safe methods, the view's `token_scope` otherwise); writes need the view's `write_role` in the
  object's workspace (viewer < editor < admin). Creating picks a workspace with
  `workspace_for_write()`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.filters import BaseFilterBackend
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission

from pipelines_ui.accounts.models import ApiToken, Membership, Role, Workspace
from pipelines_ui.accounts.services import caller_workspaces


def token_of(request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


def workspaces(request) -> QuerySet[Workspace]:
    """The workspaces this request may reach (the tenancy root of every queryset)."""
    return caller_workspaces(request.user, token_of(request))


def role_in(request, workspace_id: int) -> Membership | None:
    """The caller's membership of a workspace it may reach, else None."""
    token = token_of(request)
    if token is not None and token.workspace_id != workspace_id:
        return None
    return Membership.objects.filter(user=request.user, workspace_id=workspace_id).first()


def require_role(request, workspace_id: int, role: str) -> None:
    """403 unless the caller holds `role` (or more) in the workspace. Call it only for a
    workspace the caller can see, so the 403 confirms nothing new."""
    member = role_in(request, workspace_id)
    if member is None or not member.allows(role):
        raise PermissionDenied(f"This needs the {Role(role).label.lower()} role (or higher) in "
                               "the workspace.")


def workspace_of(obj: Any) -> int:
    """The workspace id an object belongs to (directly or through its parent)."""
    if isinstance(obj, Workspace):
        return obj.pk
    for attribute in ("workspace_id", "pipeline", "dataset", "run"):
        value = getattr(obj, attribute, None)
        if isinstance(value, int):
            return value
        if value is not None:
            return workspace_of(value)
    raise TypeError(f"{type(obj).__name__} has no workspace")


class WorkspaceAccess(BasePermission):
    """Authenticated callers; token scopes; roles for writes (see the module docstring).

    A view sets `token_scope` (default "publish") and `write_role` (default editor); an
    @action may override either by passing them as keyword arguments.
    """

    message = "Authentication credentials were not provided."

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        token = token_of(request)
        if token is None:
            return True
        scopes = allowed_scopes(request, view)
        if not scopes:
            self.message = "API tokens cannot use this route; it needs a signed-in session."
            return False
        if not any(token.has_scope(scope) for scope in scopes):
            self.message = f"This token lacks the scope for this operation ({' or '.join(scopes)})."
            return False
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        role = required_role(request, view)
        if role is not None:
            require_role(request, workspace_of(obj), role)
        return True


def allowed_scopes(request, view) -> list[str]:
    """The token scopes of which any one allows this operation (none: sessions only)."""
    if hasattr(view, "token_scopes"):
        return list(view.token_scopes(request))
    if request.method in SAFE_METHODS:
        return ["read"]
    scope = getattr(view, "token_scope", "publish")
    if scope == "endpoint:invoke":
        # Invoking endpoint X: a token for X, for every endpoint, or one that may start runs.
        name = view.kwargs.get(view.lookup_url_kwarg or view.lookup_field, "")
        return [f"endpoint:invoke:{name}", "run"]
    return [scope]


def required_role(request, view) -> str | None:
    """The role an operation on an object needs; None for reads."""
    if request.method in SAFE_METHODS:
        return None
    return getattr(view, "write_role", Role.EDITOR)


def workspace_for_write(request, workspace: Workspace | None, role: str,
                        field: str = "workspace") -> Workspace:
    """The workspace a create names: it must be one of the caller's (else a 400 naming the
    field, as if it did not exist) and the caller needs `role` there (else 403)."""
    if workspace is None:
        reachable = list(workspaces(request)[:2])
        if len(reachable) != 1:
            raise ValidationError({field: ["This field is required (you belong to several "
                                           "workspaces)."]})
        workspace = reachable[0]
    elif not workspaces(request).filter(pk=workspace.pk).exists():
        raise ValidationError({field: [f"Invalid pk \"{workspace.pk}\" - object does not "
                                       "exist."]})
    require_role(request, workspace.pk, role)
    return workspace


@extend_schema_field(OpenApiTypes.INT)
class ScopedPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A reference to an object in one of the caller's workspaces; any other id reads as
    "does not exist" (a 400 naming the field, docs/reliability.md S3)."""

    def __init__(self, model, **kwargs):
        self.model = model
        super().__init__(**kwargs)

    def get_queryset(self):
        return self.model.objects.filter(workspace__in=workspaces(self.context["request"]))


def check_unique_name(model, workspace_id: int, name: str, exclude_pk: int | None = None,
                      field: str = "name") -> None:
    """400 naming the field when the workspace already has an object of this name."""
    taken = model.objects.filter(workspace_id=workspace_id, **{field: name})
    if taken.exclude(pk=exclude_pk).exists():
        raise ValidationError({field: [f"The workspace already has a {model._meta.verbose_name} "
                                       f"named {name!r}."]})


class Pagination(LimitOffsetPagination):
    """limit/offset paging; unlike DRF's, a bad value is a 400, not silently the default."""

    default_limit = 50
    max_limit = 500

    def get_limit(self, request) -> int:
        limit = _non_negative(request, self.limit_query_param, minimum=1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request) -> int:
        return _non_negative(request, self.offset_query_param) or 0


    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        for param in params:
            param["allowEmptyValue"] = True
        return params


MAX_ID = 2**63 - 1  # the largest BigAutoField; beyond it a lookup fails in the database
_WHOLE = re.compile(r"[0-9]{1,19}")


def parse_id(name: str, raw: str) -> int:
    """A query parameter that holds an id or a count; 400 naming it otherwise."""
    if not _WHOLE.fullmatch(raw) or int(raw) > MAX_ID:
        raise ValidationError({name: ["Must be a whole number (at most 19 digits)."]})
    return int(raw)


def one_named(request, found: QuerySet, what: str):
    """The one object of `found` (the caller's, filtered by name) in ?workspace= if given:
    404 when none, 400 when several of the caller's workspaces hold one of that name."""
    workspace = request.query_params.get("workspace")
    if workspace:
        found = found.filter(workspace_id=parse_id("workspace", workspace))
    matches = list(found[:2])
    if not matches:
        raise Http404
    if len(matches) > 1:
        raise ValidationError({"workspace": [f"Several of your workspaces have {what} of this "
                                             "name; add ?workspace=<id>."]})
    return matches[0]


def _non_negative(request, name: str, minimum: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    value = parse_id(name, raw)
    if value < minimum:
        raise ValidationError({name: [f"Must be at least {minimum}."]})
    return value


class QueryFilters(BaseFilterBackend):
    """Filters a view declares as `query_filters = {"param": ("lookup", kind)}`.

    Kinds: int, str, datetime, or a tuple of allowed strings. A bad value is a 400 naming it.
    """

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) != "list":
            return queryset
        for name, (lookup, kind) in getattr(view, "query_filters", {}).items():
            raw = request.query_params.get(name)
            if raw is None or raw == "":
                continue
            queryset = queryset.filter(**{lookup: _parse(name, kind, raw)})
        return queryset

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        params = []
        for name, (_lookup, kind) in getattr(view, "query_filters", {}).items():
            if isinstance(kind, tuple):
                schema: dict[str, Any] = {"type": "string", "enum": list(kind)}
            elif kind is int:
                schema = {"type": "integer"}
            else:
                # A date-time is ISO 8601 (Django's parse_datetime), more lenient than RFC 3339.
                schema = {"type": "string"}
            params.append({"name": name, "in": "query", "required": False, "schema": schema,
                           "allowEmptyValue": True, "description": _describe(name, kind)})
        return params


def _describe(name: str, kind: Any) -> str:
    if kind is datetime:
        moment = "after" if name.endswith("after") else "before"
        return (f"Only objects created {moment} this ISO 8601 date-time, e.g. "
                "2026-01-31T12:00:00Z. Empty: no filter.")
    return f"Only objects whose {name.replace('_', ' ')} is this value. Empty: no filter."


def _parse(name: str, kind: Any, raw: str) -> Any:
    if isinstance(kind, tuple):
        if raw not in kind:
            raise ValidationError({name: [f"Must be one of: {', '.join(kind)}."]})
        return raw
    if kind is int:
        return parse_id(name, raw)
    if kind is datetime:
        try:
            moment = parse_datetime(raw)
        except ValueError:
            moment = None
        if moment is None:
            raise ValidationError({name: ["Must be a date-time like 2026-01-31T12:00:00Z."]})
        return moment
    return raw


class StrictMixin:
    """Refuse fields the serializer does not accept, rather than silently ignoring them.

    Read-only fields (workspace after creation, status, created_by, ...) count as not accepted,
    so mass assignment is a 400 that names them (docs/reliability.md S10).
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(key) for key in data if key not in writable)
            if unknown:
                raise ValidationError({key: ["Unknown or read-only field."] for key in unknown})
        return super().to_internal_value(data)


class StrictSerializer(StrictMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictMixin, serializers.ModelSerializer):
    pass
