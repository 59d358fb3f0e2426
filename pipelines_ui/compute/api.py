"""Compute targets with the workers serving them; admins register and change targets."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError

from pipelines_ui.accounts.models import Role, Workspace
from pipelines_ui.api_base import (
    QueryFilters,
    StrictModelSerializer,
    workspace_for_write,
    workspaces,
)
from pipelines_ui.compute.models import ComputeTarget, Worker
from pipelines_ui.compute.services import issue_worker_key


class WorkerSerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(choices=["online", "lost", "stopped"], read_only=True)

    class Meta:
        model = Worker
        fields = ["hostname", "state", "slots", "busy", "resources", "started_at",
                  "last_seen_at"]
        read_only_fields = fields


class ComputeTargetSerializer(StrictModelSerializer):
    workers = WorkerSerializer(many=True, read_only=True)
    queue = serializers.CharField(read_only=True)
    is_default = serializers.BooleanField(
        required=False, help_text="New steps of the workspace run here. Setting it clears it "
        "on the workspace's other target; a workspace's first target is its default.")

    class Meta:
        model = ComputeTarget
        fields = ["id", "workspace", "name", "description", "hardware", "max_concurrency",
                  "python", "is_default", "queue", "workers", "created_at"]
        read_only_fields = ["workspace", "created_at"]
        # Not the validator DRF derives from the one-default constraint: saving a default
        # clears the previous one instead of refusing it.
        validators: list = []

    def validate_is_default(self, value: bool) -> bool:
        if not value and self.instance is not None and self.instance.is_default:
            raise ValidationError("A workspace keeps one default target: make another target "
                                  "the default instead.")
        return value


class NewComputeTargetSerializer(ComputeTargetSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.all(),
                                                   required=False)
    worker_key = serializers.CharField(
        read_only=True, help_text="Workers start with this key; shown this once.")

    class Meta(ComputeTargetSerializer.Meta):
        fields = [*ComputeTargetSerializer.Meta.fields, "worker_key"]
        read_only_fields = ["created_at"]


class ComputeTargetChangeSerializer(ComputeTargetSerializer):
    class Meta(ComputeTargetSerializer.Meta):
        read_only_fields = ["workspace", "name", "created_at"]


@extend_schema_view(
    create=extend_schema(request=NewComputeTargetSerializer,
                         responses={201: NewComputeTargetSerializer}),
    partial_update=extend_schema(request=ComputeTargetChangeSerializer,
                                 responses=ComputeTargetSerializer),
)
class ComputeTargetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           mixins.CreateModelMixin, mixins.UpdateModelMixin,
                           viewsets.GenericViewSet):
    """Where steps run: each target is a Celery queue; its workers show online or lost."""

    http_method_names = ["get", "post", "patch", "head", "options"]
    serializer_class = ComputeTargetSerializer
    token_scope = "publish"
    write_role = Role.ADMIN
    filter_backends = [QueryFilters]
    query_filters = {"workspace": ("workspace_id", int)}

    def get_queryset(self):
        return (ComputeTarget.objects.filter(workspace__in=workspaces(self.request))
                .prefetch_related("workers").order_by("name"))

    def get_serializer_class(self):
        if self.action == "create":
            return NewComputeTargetSerializer
        if self.action == "partial_update":
            return ComputeTargetChangeSerializer
        return ComputeTargetSerializer

    def perform_create(self, serializer) -> None:
        workspace = workspace_for_write(self.request, serializer.validated_data.pop(
            "workspace", None), Role.ADMIN)
        target = serializer.save(workspace=workspace)
        target.worker_key = issue_worker_key(target)
