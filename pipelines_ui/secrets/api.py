"""Workspace secrets over the API: names are listed, values go in and never come out (S7)."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import APIException, ValidationError

from pipelines_ui.accounts.models import Role, Workspace
from pipelines_ui.api_base import (
    QueryFilters,
    StrictModelSerializer,
    check_unique_name,
    workspace_for_write,
    workspaces,
)
from pipelines_ui.secrets import keys
from pipelines_ui.secrets.models import Secret
from runner.spec import ENV_NAME


class KeysUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "secrets_key_unusable"


class SecretSerializer(StrictModelSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.all(),
                                                   required=False)
    value = serializers.CharField(write_only=True, trim_whitespace=False, max_length=65_536,
                                  help_text="Write-only: never returned, not even to admins.")
    created_by = serializers.CharField(source="created_by.username", read_only=True,
                                       allow_null=True)

    class Meta:
        model = Secret
        fields = ["id", "workspace", "name", "value", "created_by", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate_name(self, name: str) -> str:
        if not ENV_NAME.fullmatch(name):
            raise ValidationError("A secret's name is an environment variable name, like "
                                  "API_KEY (letters, digits, _; not starting with PIPELINES_).")
        return name


class SecretChangeSerializer(SecretSerializer):
    class Meta(SecretSerializer.Meta):
        read_only_fields = ["workspace", "name", "created_at", "updated_at"]


@extend_schema_view(partial_update=extend_schema(request=SecretChangeSerializer,
                                                 responses=SecretSerializer))
class SecretViewSet(viewsets.ModelViewSet):
    """Secrets a node can declare by name (`"secrets": ["API_KEY"]`); its step gets them as
    environment variables, masked as *** in its log. Admins set and replace values."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    serializer_class = SecretSerializer
    token_scope = "publish"
    write_role = Role.ADMIN
    filter_backends = [QueryFilters]
    query_filters = {"workspace": ("workspace_id", int)}

    def get_queryset(self):
        return (Secret.objects.filter(workspace__in=workspaces(self.request))
                .select_related("created_by").order_by("name"))

    def get_serializer_class(self):
        return SecretChangeSerializer if self.action == "partial_update" else SecretSerializer

    def perform_create(self, serializer) -> None:
        workspace = workspace_for_write(self.request, serializer.validated_data.pop(
            "workspace", None), Role.ADMIN)
        check_unique_name(Secret, workspace.pk, serializer.validated_data["name"])
        _save_encrypted(serializer, workspace=workspace, created_by=self.request.user)

    def perform_update(self, serializer) -> None:
        _save_encrypted(serializer, updated_at=timezone.now())


def _save_encrypted(serializer, **fields) -> None:
    """Save, the value encrypted (S17); a server without a usable key says so in the answer."""
    try:
        serializer.save(**fields)
    except keys.KeysUnusable as exc:
        raise KeysUnavailable(f"{exc} Ask the server's administrator to set it.") from None
