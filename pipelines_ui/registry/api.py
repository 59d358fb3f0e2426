"""The model registry's API: registered models, their versions, deploying, and scoring rows.

Models are found by name, as endpoints are: a name two of the caller's workspaces share needs
?workspace=<id>. Viewers read and score; editors register and deploy.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.filters import SearchFilter
from rest_framework.response import Response

from pipelines_ui.accounts.models import Role, Workspace
from pipelines_ui.api_base import (
    QueryFilters,
    StrictModelSerializer,
    StrictSerializer,
    check_unique_name,
    one_named,
    workspace_for_write,
    workspaces,
)
from pipelines_ui.api_errors import Conflict
from pipelines_ui.data.models import Artifact
from pipelines_ui.registry import scoring, services
from pipelines_ui.registry.models import ModelVersion, RegisteredModel

NAME_REGEX = "[-a-zA-Z0-9_]+"


class ModelVersionSerializer(serializers.ModelSerializer):
    artifact = serializers.CharField(source="artifact.digest", read_only=True)
    run = serializers.IntegerField(source="step_run.run_id", allow_null=True, read_only=True,
                                   help_text="The run whose register-model step registered it.")
    node = serializers.CharField(source="step_run.node", allow_null=True, read_only=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True,
                                       read_only=True)
    deployed = serializers.BooleanField(source="is_deployed", read_only=True)
    metrics = serializers.DictField(child=serializers.FloatField(), read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["number", "artifact", "metrics", "description", "run", "node", "created_by",
                  "created_at", "deployed", "deployed_at"]
        read_only_fields = fields


class NewModelVersionSerializer(StrictSerializer):
    artifact = serializers.RegexField(r"^sha256:[0-9a-f]{64}$",
                                      help_text="The digest of a model artifact of the "
                                                "workspace (model.joblib and settings.json).")
    metrics = serializers.DictField(child=serializers.FloatField(), default=dict)
    description = serializers.CharField(allow_blank=True, default="")


class RegisteredModelSerializer(StrictModelSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.all(),
                                                   required=False)
    latest_version = serializers.SerializerMethodField()
    deployed_versions = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = ["id", "workspace", "name", "description", "latest_version",
                  "deployed_versions", "created_at"]
        read_only_fields = ["created_at"]
        validators: list = []  # the workspace may be implied; the view checks the name

    def get_latest_version(self, model: RegisteredModel) -> int | None:
        numbers = [v.number for v in model.versions.all()]
        return max(numbers) if numbers else None

    def get_deployed_versions(self, model: RegisteredModel) -> list[int]:
        return sorted(v.number for v in model.versions.all() if v.is_deployed)


class ScoreRequestSerializer(StrictSerializer):
    rows = serializers.JSONField(help_text="A list of rows: objects of feature: number, or "
                                           "lists of numbers in the model's feature order.")


class ScoreResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()
    predictions = serializers.ListField(child=serializers.JSONField())


def model_named(request, name: str) -> RegisteredModel:
    """The caller's model of this name (404 when none; 400 when two workspaces hold one)."""
    return one_named(request, RegisteredModel.objects.filter(
        workspace__in=workspaces(request), name=name), "a model")


def version_of(model: RegisteredModel, number: str | int) -> ModelVersion:
    version = (model.versions.select_related("artifact", "step_run", "created_by")
               .filter(number=int(number)).first())
    if version is None:
        raise Http404
    return version


class RegisteredModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                             mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Registered models, by name, with numbered versions that can be deployed."""

    serializer_class = RegisteredModelSerializer
    lookup_field = "name"
    lookup_value_regex = NAME_REGEX
    token_scope = "publish"
    filter_backends = [QueryFilters, SearchFilter]
    search_fields = ["name", "description"]
    query_filters = {"workspace": ("workspace_id", int)}

    def get_queryset(self):
        return (RegisteredModel.objects.filter(workspace__in=workspaces(self.request))
                .prefetch_related("versions").order_by("name", "id"))

    def get_object(self) -> RegisteredModel:
        model = model_named(self.request, self.kwargs["name"])
        self.check_object_permissions(self.request, model)
        return model

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        workspace = workspace_for_write(self.request, data.pop("workspace", None), Role.EDITOR)
        check_unique_name(RegisteredModel, workspace.pk, data["name"])
        serializer.save(workspace=workspace)

    @extend_schema(methods=["GET"], request=None, responses=ModelVersionSerializer(many=True))
    @extend_schema(methods=["POST"], request=NewModelVersionSerializer,
                   responses={201: ModelVersionSerializer})
    @action(detail=True, methods=["get", "post"])
    def versions(self, request, name=None):
        """GET: the versions, newest first. POST: register an artifact as the next version."""
        model = self.get_object()
        if request.method == "GET":
            versions = model.versions.select_related("artifact", "step_run", "created_by")
            page = self.paginate_queryset(versions.order_by("-number"))
            return self.get_paginated_response(ModelVersionSerializer(page, many=True).data)
        body = NewModelVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        artifact = Artifact.objects.filter(workspace=model.workspace_id,
                                           digest=data["artifact"]).first()
        if artifact is None:
            raise ValidationError({"artifact": ["No artifact with this digest in the model's "
                                                "workspace."]})
        version = services.register_model_version(
            model.workspace_id, model.name, artifact=artifact, metrics=data["metrics"],
            description=data["description"], user=request.user)
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ModelVersionSerializer)
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]{1,9})")
    def version(self, request, name=None, number=None):
        """One version with its metrics, lineage and deployment."""
        return Response(ModelVersionSerializer(version_of(self.get_object(), number)).data)

    @extend_schema(request=None, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]{1,9})/deploy")
    def deploy(self, request, name=None, number=None):
        """Serve the version at POST .../versions/{number}/score (409 if it cannot load)."""
        version = version_of(self.get_object(), number)
        try:
            scoring.loaded_model(version.artifact)  # loaded now, not at the first request
        except scoring.ModelUnavailable as exc:
            raise Conflict(f"Model {name} version {version.number}: {exc}") from None
        return Response(ModelVersionSerializer(services.deploy_version(version)).data)

    @extend_schema(request=None, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"],
            url_path=r"versions/(?P<number>[0-9]{1,9})/undeploy")
    def undeploy(self, request, name=None, number=None):
        """Stop serving the version; its scoring endpoint answers 404."""
        version = services.undeploy_version(version_of(self.get_object(), number))
        return Response(ModelVersionSerializer(version).data)


class ScoreView(generics.GenericAPIView):
    """POST rows to a deployed model version; the answer holds one prediction per row."""

    serializer_class = ScoreRequestSerializer
    # Scoring changes nothing: viewers may score, and tokens with the read scope.
    token_scope = "read"
    write_role = Role.VIEWER

    def get_queryset(self):
        return RegisteredModel.objects.filter(workspace__in=workspaces(self.request))

    @extend_schema(responses=ScoreResponseSerializer)
    def post(self, request, name: str, number: int):
        model = model_named(request, name)
        self.check_object_permissions(request, model)
        version = version_of(model, number)
        if not version.is_deployed:
            raise NotFound(f"Model {model.name} version {version.number} is not deployed.")
        body = ScoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            predictions = scoring.predict(version.artifact, body.validated_data["rows"])
        except scoring.RowsInvalid as exc:
            raise ValidationError({"rows": [str(exc)]}) from None
        except scoring.ModelUnavailable as exc:
            raise Conflict(f"Model {model.name} version {version.number}: {exc}") from None
        return Response({"model": model.name, "version": version.number,
                         "predictions": predictions})
