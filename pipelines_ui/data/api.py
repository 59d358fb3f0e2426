"""Datastores, artifacts (metadata and downloads) and datasets with their versions."""

from __future__ import annotations

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.filters import SearchFilter
from rest_framework.response import Response

from pipelines_ui.accounts.models import Role, Workspace
from pipelines_ui.api_base import (
    QueryFilters,
    StrictModelSerializer,
    StrictSerializer,
    check_unique_name,
    workspace_for_write,
    workspaces,
)
from pipelines_ui.data import services
from pipelines_ui.data.models import Artifact, Dataset, DatasetVersion, Datastore


class DatastoreSerializer(StrictModelSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.all(),
                                                   required=False)

    class Meta:
        model = Datastore
        fields = ["id", "workspace", "name", "url", "is_default", "created_at"]
        read_only_fields = ["created_at"]
        validators: list = []  # the workspace may be implied; the view checks the name

    def validate_url(self, url: str) -> str:
        try:
            return services.check_datastore_url(url)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class DatastoreViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Where artifacts live (fsspec URLs); admins add them."""

    serializer_class = DatastoreSerializer
    token_scope = "publish"
    write_role = Role.ADMIN
    filter_backends = [QueryFilters]
    query_filters = {"workspace": ("workspace_id", int)}

    def get_queryset(self):
        return Datastore.objects.filter(workspace__in=workspaces(self.request)).order_by(
            "name", "id")

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        workspace = workspace_for_write(self.request, data.pop("workspace", None), Role.ADMIN)
        check_unique_name(Datastore, workspace.pk, data["name"])
        serializer.instance = services.save_datastore(Datastore(workspace=workspace, **data))


class ArtifactSerializer(serializers.ModelSerializer):
    produced_by_run = serializers.IntegerField(source="produced_by.run_id", allow_null=True,
                                               read_only=True)
    produced_by_node = serializers.CharField(source="produced_by.node", allow_null=True,
                                             read_only=True)

    class Meta:
        model = Artifact
        fields = ["id", "workspace", "digest", "uri", "size", "produced_by", "produced_by_run",
                  "produced_by_node", "created_at"]
        read_only_fields = fields


_BINARY = OpenApiResponse(OpenApiTypes.BINARY, description="The file, or a zip of the folder.")


class ArtifactViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                      viewsets.GenericViewSet):
    """Artifacts (immutable file trees named by digest): GET one to download it."""

    serializer_class = ArtifactSerializer
    lookup_field = "digest"
    lookup_value_regex = "sha256:[0-9a-f]{64}"
    filter_backends = [QueryFilters]
    query_filters = {"workspace": ("workspace_id", int), "digest": ("digest", str),
                     "run": ("produced_by__run_id", int)}

    def get_queryset(self):
        return (Artifact.objects.filter(workspace__in=workspaces(self.request))
                .select_related("produced_by").order_by("-created_at", "-id"))

    def get_object(self) -> Artifact:
        # The same content may sit in two of the caller's workspaces: either row will do.
        artifact = self.get_queryset().filter(digest=self.kwargs["digest"]).first()
        if artifact is None:
            raise Http404
        return artifact

    @extend_schema(
        parameters=[OpenApiParameter("path", str, allow_blank=True,
                                     description="One file inside a folder artifact, e.g. "
                                     "model/weights.bin.")],
        responses={(200, "application/octet-stream"): _BINARY,
                   (200, "application/zip"): _BINARY},
    )
    def retrieve(self, request, *args, **kwargs):
        """Download: a file artifact as itself, a folder as a zip, or one file of a folder."""
        artifact = self.get_object()
        try:
            download = services.open_artifact(artifact, request.query_params.get("path", ""))
        except FileNotFoundError as exc:
            raise Http404(str(exc)) from None
        return FileResponse(download.file, as_attachment=True, filename=download.filename,
                            content_type=download.content_type)


class DatasetVersionSerializer(serializers.ModelSerializer):
    artifact = serializers.CharField(source="artifact.digest", read_only=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True,
                                       read_only=True)

    class Meta:
        model = DatasetVersion
        fields = ["number", "artifact", "description", "created_by", "created_at"]
        read_only_fields = fields


class NewDatasetVersionSerializer(StrictSerializer):
    artifact = serializers.RegexField(r"^sha256:[0-9a-f]{64}$",
                                      help_text="The digest of an artifact of the workspace.")
    description = serializers.CharField(allow_blank=True, default="")


class DatasetSerializer(StrictModelSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.all(),
                                                   required=False)
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = ["id", "workspace", "name", "description", "latest_version", "created_at"]
        read_only_fields = ["created_at"]
        validators: list = []  # the workspace may be implied; the view checks the name

    def get_latest_version(self, dataset: Dataset) -> int | None:
        numbers = [v.number for v in dataset.versions.all()]
        return max(numbers) if numbers else None


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Named, versioned artifacts that pipelines consume."""

    serializer_class = DatasetSerializer
    token_scope = "publish"
    filter_backends = [QueryFilters, SearchFilter]
    search_fields = ["name", "description"]
    query_filters = {"workspace": ("workspace_id", int)}

    def get_queryset(self):
        return (Dataset.objects.filter(workspace__in=workspaces(self.request))
                .prefetch_related("versions").order_by("name", "id"))

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        workspace = workspace_for_write(self.request, data.pop("workspace", None), Role.EDITOR)
        check_unique_name(Dataset, workspace.pk, data["name"])
        serializer.save(workspace=workspace)

    @extend_schema(methods=["GET"], request=None, responses=DatasetVersionSerializer(many=True))
    @extend_schema(methods=["POST"], request=NewDatasetVersionSerializer,
                   responses={201: DatasetVersionSerializer})
    @action(detail=True, methods=["get", "post"])
    def versions(self, request, pk=None):
        """GET: the versions, newest first. POST: register an artifact as the next version."""
        dataset = self.get_object()
        if request.method == "GET":
            versions = dataset.versions.select_related("artifact", "created_by")
            page = self.paginate_queryset(versions.order_by("-number"))
            return self.get_paginated_response(DatasetVersionSerializer(page, many=True).data)
        body = NewDatasetVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        artifact = Artifact.objects.filter(workspace=dataset.workspace_id,
                                           digest=body.validated_data["artifact"]).first()
        if artifact is None:
            raise ValidationError({"artifact": ["No artifact with this digest in the dataset's "
                                                "workspace."]})
        version = services.add_dataset_version(
            dataset, artifact=artifact, description=body.validated_data["description"],
            user=request.user)
        return Response(DatasetVersionSerializer(version).data, status=status.HTTP_201_CREATED)
