"""Workspaces and API tokens."""

from __future__ import annotations

import re

from django.db.models import OuterRef, Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from pipelines_ui.accounts.models import ApiToken, Membership, Role, TokenScope, Workspace
from pipelines_ui.accounts.services import issue_token, revoke_token
from pipelines_ui.api_base import (
    QueryFilters,
    StrictModelSerializer,
    workspace_for_write,
    workspaces,
)


class WorkspaceSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "description", "created_at", "role"]

    def get_role(self, workspace: Workspace) -> str | None:
        return getattr(workspace, "caller_role", None)


class WorkspaceViewSet(viewsets.ReadOnlyModelViewSet):
    """The caller's workspaces, with the caller's role in each."""

    serializer_class = WorkspaceSerializer

    def get_queryset(self):
        role = Membership.objects.filter(workspace=OuterRef("pk"), user=self.request.user)
        return workspaces(self.request).annotate(
            caller_role=role.values("role")[:1]).order_by("name")


SCOPE = re.compile(r"(read|run|publish|endpoint:invoke(:[A-Za-z0-9_-]{1,100})?)")


class TokenSerializer(StrictModelSerializer):
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=120), allow_empty=False,
        help_text="read, run, publish, endpoint:invoke, or endpoint:invoke:<endpoint name>.")
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.all(),
                                                   required=False)
    user = serializers.CharField(source="user.username", read_only=True)
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "workspace", "user", "name", "prefix", "scopes", "created_at",
                  "expires_at", "last_used_at", "revoked_at", "active"]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]

    def validate_scopes(self, scopes: list[str]) -> list[str]:
        bad = [s for s in scopes if not SCOPE.fullmatch(s)]
        if bad:
            known = ", ".join(TokenScope.values)
            raise serializers.ValidationError(
                f"unknown scope {bad[0]!r}; the scopes are {known} and endpoint:invoke:<name>")
        return sorted(set(scopes))

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value


class NewTokenSerializer(TokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown this once; store it now.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                   mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """API tokens: admins issue them (for themselves) and revoke any of their workspace's.

    The key is in the response to POST alone; it is stored as a hash. DELETE revokes: the
    token stops working on its next request and stays listed, marked revoked. Tokens cannot
    manage tokens: these routes need a signed-in session.
    """

    serializer_class = TokenSerializer
    write_role = Role.ADMIN
    filter_backends = [QueryFilters]
    query_filters = {"workspace": ("workspace_id", int)}

    def token_scopes(self, request) -> list[str]:
        return []  # no token scope reaches token management

    def get_queryset(self):
        admin_of = Membership.objects.filter(user=self.request.user, role=Role.ADMIN)
        return (ApiToken.objects.filter(workspace__in=workspaces(self.request))
                .filter(Q(user=self.request.user) |
                        Q(workspace__in=admin_of.values("workspace")))
                .select_related("user").order_by("-created_at", "-id"))

    def get_serializer_class(self):
        return NewTokenSerializer if self.action == "create" else TokenSerializer

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        workspace = workspace_for_write(request, data.get("workspace"), Role.ADMIN)
        token, key = issue_token(workspace, request.user, name=data["name"],
                                 scopes=data["scopes"], expires_at=data.get("expires_at"))
        token.key = key
        return Response(NewTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, *args, **kwargs):
        revoke_token(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
