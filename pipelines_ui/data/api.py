"""Datastores, artifacts (metadata and downloads) and datasets with their versions."""

from __future__ import annotations

import tempfile
from typing import IO

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.filters import SearchFilter
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from pipelines_ui.accounts.models import Role, Workspace
from pipelines_ui.api_base import (
    QueryFilters,
    StrictModelSerializer,
    StrictSerializer,
    check_unique_name,
    parse_id,
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
        # The URL names the server's folders or buckets: given, never shown back (S16).
        extra_kwargs = {"url": {"write_only": True}}
        validators: list = []  # the workspace may be implied; the view checks the name

    def validate_url(self, url: str) -> str:
        try:
            return services.check_datastore_url(url)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class DatastoreViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Where artifacts live (fsspec URLs); admins add them. A datastore is named, never
    located: its URL is for the server's operators (the Django admin), S16."""

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
        # Named by digest; where it is stored (`uri`) is for the server alone (S16).
        fields = ["id", "workspace", "digest", "size", "produced_by", "produced_by_run",
                  "produced_by_node", "created_at"]
        read_only_fields = fields


_BINARY = OpenApiResponse(OpenApiTypes.BINARY, description="The file, or a zip of the folder.")
UPLOAD_SPOOL_BYTES = 8 * 1024 * 1024


class UploadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_too_large"


class TarParser(BaseParser):
    """A tar archive (gzip-compressed or not) as a spooled file, read up to the upload limit.

    The body is streamed, not held in memory, so DATA_UPLOAD_MAX_MEMORY_SIZE does not apply;
    PIPELINES_MAX_UPLOAD_BYTES does.
    """

    media_type = "application/x-tar"

    def parse(self, stream, media_type=None, parser_context=None) -> IO[bytes]:
        limit = services.upload_limit()
        spool = tempfile.SpooledTemporaryFile(max_size=UPLOAD_SPOOL_BYTES)
        size = 0
        while stream is not None and (chunk := stream.read(1024 * 1024)):
            size += len(chunk)
            if size > limit:
                spool.close()
                raise UploadTooLarge(f"The upload is larger than the limit of {limit} bytes "
                                     "(PIPELINES_MAX_UPLOAD_BYTES).")
            spool.write(chunk)
        spool.seek(0)
        return spool


def _workspace_param(request) -> Workspace | None:
    """The workspace named by ?workspace=, which must be one of the caller's (else a 400)."""
    raw = request.query_params.get("workspace")
    if not raw:
        return None
    chosen = workspaces(request).filter(pk=parse_id("workspace", raw)).first()
    if chosen is None:
        raise ValidationError({"workspace": [f"Invalid pk \"{raw}\" - object does not exist."]})
    return chosen


class GzipTarParser(TarParser):
    media_type = "application/gzip"


class XGzipTarParser(TarParser):
    media_type = "application/x-gzip"


class OctetStreamTarParser(TarParser):
    media_type = "application/octet-stream"


class ArtifactViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                      viewsets.GenericViewSet):
    """Artifacts (immutable file trees named by digest): GET one to download it, POST a tar
    archive of a folder to store it (a step's source snapshot)."""

    serializer_class = ArtifactSerializer
    token_scope = "publish"
    write_role = Role.EDITOR
    lookup_field = "digest"
    lookup_value_regex = "sha256:[0-9a-f]{64}"
    filter_backends = [QueryFilters]
    query_filters = {"workspace": ("workspace_id", int), "digest": ("digest", str),
                     "run": ("produced_by__run_id", int)}

    def get_queryset(self):
        return (Artifact.objects.filter(workspace__in=workspaces(self.request))
                .select_related("produced_by").order_by("-created_at", "-id"))

    def get_parsers(self):
        # Requests call this before `action` is set (POST is only create here); the schema
        # generator sets `action` and no request.
        if (getattr(self, "action", None) == "create"
                or getattr(self.request, "method", None) == "POST"):
            return [TarParser(), GzipTarParser(), XGzipTarParser(), OctetStreamTarParser()]
        return super().get_parsers()

    @extend_schema(
        parameters=[OpenApiParameter("workspace", int, allow_blank=True,
                                     description="Which of your workspaces (required when you "
                                     "belong to several).")],
        request={"application/gzip": OpenApiTypes.BINARY,
                 "application/x-tar": OpenApiTypes.BINARY,
                 "application/octet-stream": OpenApiTypes.BINARY},
        responses={201: ArtifactSerializer, 200: ArtifactSerializer},
        description="Store a folder, sent as a tar archive of its contents (gzip is detected "
        "under any of the content types), as a content-addressed artifact: 201 when new, 200 "
        "when the workspace already had it. Links and special files are refused; the archive "
        "and what it unpacks to must each be at most PIPELINES_MAX_UPLOAD_BYTES (413 "
        "otherwise).",
    )
    def create(self, request, *args, **kwargs):
        workspace = workspace_for_write(request, _workspace_param(request), Role.EDITOR)
        if not hasattr(request.data, "read"):
            raise ValidationError({"body": ["Send the folder as a tar archive (Content-Type "
                                            "application/gzip or application/x-tar)."]})
        try:
            artifact, created = services.store_snapshot(
                workspace, request.data, store_url=services.datastore_url(workspace.pk))
        except services.UploadTooLarge as exc:
            raise UploadTooLarge(str(exc)) from None
        except services.UploadInvalid as exc:
            raise ValidationError({"body": [str(exc)]}) from None
        return Response(ArtifactSerializer(artifact).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

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
        path = request.query_params.get("path", "")
        try:
            download = services.open_artifact(artifact, path)
        except FileNotFoundError:
            # The error may name the datastore's location: say only what the caller named.
            raise Http404(f"No file {path!r} in artifact {artifact.digest}." if path else
                          f"Artifact {artifact.digest} is no longer in its datastore.") from None
        return FileResponse(download.file, as_attachment=True, filename=download.filename,
                            content_type=download.content_type)


class DatasetVersionSerializer(serializers.ModelSerializer):
    artifact = serializers.CharField(source="artifact.digest", read_only=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True,
                                       read_only=True)
    run = serializers.IntegerField(source="step_run.run_id", allow_null=True, read_only=True,
                                   help_text="The run whose register-dataset step registered "
                                             "it; null when a person did.")
    node = serializers.CharField(source="step_run.node", allow_null=True, read_only=True)

    class Meta:
        model = DatasetVersion
        fields = ["number", "artifact", "description", "created_by", "run", "node",
                  "created_at"]
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
            versions = dataset.versions.select_related("artifact", "created_by", "step_run")
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
