"""Components, pipelines (draft, validation, versions), endpoints and schedules.

What starts a run (POST .../runs/, .../plan/ of a pipeline, .../runs/ of an endpoint) is routed
at those paths from the runs app (runs/trigger_api.py).

Drafts: an invalid draft may be saved, so the editor never loses work in progress; the reply
says what is wrong (`valid`, `errors`). Running and publishing need a valid spec. A save names
the `revision` it edited; a save based on an older revision is refused with 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Max
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.filters import SearchFilter
from rest_framework.response import Response

from pipelines_ui.accounts.models import Role, Workspace
from pipelines_ui.api_base import (
    QueryFilters,
    ScopedPrimaryKeyField,
    StrictModelSerializer,
    StrictSerializer,
    check_unique_name,
    one_named,
    parse_id,
    require_role,
    workspace_for_write,
    workspaces,
)
from pipelines_ui.api_errors import Conflict
from pipelines_ui.pipelines import services
from pipelines_ui.pipelines.models import Component, Endpoint, Pipeline, PipelineVersion, Schedule
from runner.components import BUILTINS, PORT_TYPES, ComponentDef

# --- Components ---------------------------------------------------------------------------


class PortSerializer(StrictSerializer):
    name = serializers.CharField(max_length=64)
    type = serializers.ChoiceField(choices=PORT_TYPES, default="any")
    optional = serializers.BooleanField(default=False)
    description = serializers.CharField(allow_blank=True, default="")


class ComponentSerializer(serializers.Serializer):
    """A step type of the palette: built in (workspace null) or registered by a workspace."""

    id = serializers.IntegerField(allow_null=True)
    workspace = serializers.IntegerField(allow_null=True)
    builtin = serializers.BooleanField()
    key = serializers.CharField(help_text="name@version, as nodes name their component.")
    name = serializers.CharField()
    version = serializers.IntegerField()
    title = serializers.CharField()
    category = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    inputs = PortSerializer(many=True)
    outputs = PortSerializer(many=True)
    params_schema = serializers.DictField()
    command = serializers.ListField(child=serializers.CharField())
    dynamic_ports = serializers.BooleanField()
    code_digest = serializers.CharField()


def _component_row(definition: ComponentDef, row: Component | None = None) -> dict[str, Any]:
    return {**definition.to_dict(), "id": row.pk if row else None,
            "workspace": row.workspace_id if row else None, "builtin": row is None}


class NewComponentSerializer(StrictModelSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.all(),
                                                   required=False)
    inputs = PortSerializer(many=True, required=False)
    outputs = PortSerializer(many=True, required=False)
    params_schema = serializers.DictField(required=False)
    command = serializers.ListField(child=serializers.CharField(max_length=500),
                                    required=False, min_length=1, max_length=100)
    files = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False,
        help_text="The component's code: file name -> text.")

    class Meta:
        model = Component
        fields = ["workspace", "name", "title", "category", "description", "inputs", "outputs",
                  "params_schema", "command", "files", "dynamic_ports"]

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        problems = services.component_problems(data)
        if problems:
            raise ValidationError(problems)
        return data


class ComponentViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """The palette: built-in components, then each workspace's registered ones.

    POST registers the next version of a component (version 1 for a new name).
    """

    serializer_class = ComponentSerializer
    queryset = Component.objects.none()  # for the schema; get_queryset scopes
    filter_backends: list = []

    def get_queryset(self):
        components = Component.objects.filter(workspace__in=workspaces(self.request))
        workspace = self.request.query_params.get("workspace")
        if workspace:
            components = components.filter(workspace_id=parse_id("workspace", workspace))
        return components.order_by("workspace_id", "name", "version")

    def get_serializer_class(self):
        return NewComponentSerializer if self.action == "create" else ComponentSerializer

    @extend_schema(parameters=[OpenApiParameter(
        "workspace", int, allow_blank=True,
        description="Registered components of this workspace only.")])
    def list(self, request, *args, **kwargs):
        rows = [_component_row(c) for c in BUILTINS.values()]
        rows += [_component_row(c.to_def(), c) for c in self.get_queryset()]
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ComponentSerializer(page, many=True).data)

    @extend_schema(responses={201: ComponentSerializer})
    def create(self, request, *args, **kwargs):
        body = NewComponentSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        workspace = workspace_for_write(request, data.pop("workspace", None), Role.EDITOR)
        component = services.register_component(workspace, user=request.user, **data)
        return Response(ComponentSerializer(_component_row(component.to_def(), component)).data,
                        status=status.HTTP_201_CREATED)


# --- Pipelines ------------------------------------------------------------------------------


class PipelineSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", allow_null=True,
                                       read_only=True)
    updated_by = serializers.CharField(source="updated_by.username", allow_null=True,
                                       read_only=True)
    latest_version = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = Pipeline
        fields = ["id", "workspace", "name", "description", "revision", "latest_version",
                  "created_by", "updated_by", "created_at", "updated_at"]
        read_only_fields = fields


class PipelineDetailSerializer(PipelineSerializer):
    class Meta(PipelineSerializer.Meta):
        fields = [*PipelineSerializer.Meta.fields, "spec"]
        read_only_fields = fields


class ErrorListSerializer(serializers.Serializer):
    node = serializers.CharField(allow_null=True)
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class SavedPipelineSerializer(PipelineDetailSerializer):
    """A pipeline just saved, with what is wrong with its draft (it may be invalid)."""

    valid = serializers.BooleanField(read_only=True)
    errors = ErrorListSerializer(many=True, read_only=True)

    class Meta(PipelineDetailSerializer.Meta):
        fields = [*PipelineDetailSerializer.Meta.fields, "valid", "errors"]
        read_only_fields = fields


class NewPipelineSerializer(StrictSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.all(),
                                                   required=False)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, default="")
    spec = serializers.JSONField(required=False, help_text="The draft; may be invalid.")


class PipelineChangeSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    spec = serializers.JSONField(required=False)
    revision = serializers.IntegerField(
        required=False, min_value=1,
        help_text="The revision the new spec was based on; required with spec.")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "spec" in data and "revision" not in data:
            raise ValidationError({"revision": ["Send the revision your spec is based on, so "
                                                "that a newer save is not overwritten."]})
        return data


class ValidateSerializer(StrictSerializer):
    spec = serializers.JSONField(required=False, help_text="Defaults to the saved draft.")


class ValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = ErrorListSerializer(many=True)
    warnings = ErrorListSerializer(many=True, help_text="What would not stop a run but would "
                                   "stall it, such as a step whose target has no worker online.")


class VersionSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", allow_null=True,
                                       read_only=True)

    class Meta:
        model = PipelineVersion
        fields = ["pipeline", "number", "message", "created_by", "created_at"]
        read_only_fields = fields


class DiffPartSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())


class NodeChangeSerializer(serializers.Serializer):
    node = serializers.CharField()
    fields = serializers.ListField(child=serializers.CharField())


class NodesDiffSerializer(DiffPartSerializer):
    changed = NodeChangeSerializer(many=True)


class EdgeSerializer(serializers.Serializer):
    # "from" is a keyword: the field is named in the serializer's declared fields below.
    to = serializers.CharField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField()
        return fields


class EdgesDiffSerializer(serializers.Serializer):
    added = EdgeSerializer(many=True)
    removed = EdgeSerializer(many=True)


class ParametersDiffSerializer(DiffPartSerializer):
    changed = serializers.ListField(child=serializers.CharField())


class DiffSerializer(serializers.Serializer):
    nodes = NodesDiffSerializer()
    edges = EdgesDiffSerializer()
    parameters = ParametersDiffSerializer()


class VersionDetailSerializer(VersionSerializer):
    previous = serializers.IntegerField(allow_null=True, read_only=True,
                                        help_text="The version the diff compares against.")
    diff = DiffSerializer(read_only=True)

    class Meta(VersionSerializer.Meta):
        fields = [*VersionSerializer.Meta.fields, "spec", "previous", "diff"]
        read_only_fields = fields


class NewVersionSerializer(StrictSerializer):
    message = serializers.CharField(allow_blank=True, default="", max_length=10_000)


def version_of(pipeline: Pipeline, number: int | None) -> PipelineVersion | None:
    if number is None:
        return None
    version = pipeline.versions.filter(number=number).first()
    if version is None:
        raise ValidationError({"version": [f"The pipeline has no version {number}."]})
    return version


@extend_schema_view(
    list=extend_schema(responses=PipelineSerializer(many=True)),
    retrieve=extend_schema(responses=PipelineDetailSerializer),
    create=extend_schema(request=NewPipelineSerializer, responses={201: SavedPipelineSerializer}),
    partial_update=extend_schema(request=PipelineChangeSerializer,
                                 responses=SavedPipelineSerializer),
)
class PipelineViewSet(viewsets.ModelViewSet):
    """Pipelines and their drafts. PATCH with spec and revision saves the draft."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    token_scope = "publish"
    write_role = Role.EDITOR
    filter_backends = [QueryFilters, SearchFilter]
    search_fields = ["name", "description"]
    query_filters = {
        "workspace": ("workspace_id", int),
        "created_after": ("created_at__gte", datetime),
        "created_before": ("created_at__lt", datetime),
    }

    def get_queryset(self):
        return (Pipeline.objects.filter(workspace__in=workspaces(self.request))
                .select_related("created_by", "updated_by")
                .annotate(latest_version=Max("versions__number")).order_by("name", "id"))

    def get_serializer_class(self):
        return PipelineSerializer if self.action == "list" else PipelineDetailSerializer

    def _saved(self, pipeline_id: int, errors) -> dict[str, Any]:
        pipeline = self.get_queryset().get(pk=pipeline_id)
        pipeline.valid = not errors
        pipeline.errors = [e.to_dict() for e in errors]
        return SavedPipelineSerializer(pipeline).data

    def create(self, request, *args, **kwargs):
        body = NewPipelineSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        workspace = workspace_for_write(request, data.get("workspace"), Role.EDITOR)
        check_unique_name(Pipeline, workspace.pk, data["name"])
        pipeline = services.create_pipeline(
            workspace, name=data["name"], description=data["description"],
            spec=data.get("spec"), user=request.user)
        errors = services.spec_errors(workspace, pipeline.spec)
        return Response(self._saved(pipeline.pk, errors), status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        pipeline = self.get_object()
        body = PipelineChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "name" in data:
            check_unique_name(Pipeline, pipeline.workspace_id, data["name"], pipeline.pk)
        errors = None
        if "spec" in data:
            try:
                errors = services.save_draft(pipeline, spec=data["spec"],
                                             revision=data["revision"], user=request.user)
            except services.StaleRevision as exc:
                raise Conflict(str(exc)) from None
        fields = {k: data[k] for k in ("name", "description") if k in data}
        if fields:
            Pipeline.objects.filter(pk=pipeline.pk).update(**fields)
        if errors is None:
            errors = services.spec_errors(pipeline.workspace, pipeline.spec)
        return Response(self._saved(pipeline.pk, errors))

    def perform_destroy(self, pipeline: Pipeline) -> None:
        services.delete_pipeline(pipeline)

    @extend_schema(request=ValidateSerializer, responses=ValidationSerializer)
    @action(detail=True, methods=["post"], token_scope="read", write_role=Role.VIEWER)
    def validate(self, request, pk=None):
        """Check a spec (or the saved draft) without saving anything: `errors` stop a run,
        `warnings` (a step whose target has no worker online) would only stall it."""
        pipeline = self.get_object()
        body = ValidateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        document = body.validated_data.get("spec", pipeline.spec)
        errors, warnings = services.spec_problems(pipeline.workspace, document)
        return Response({"valid": not errors, "errors": [e.to_dict() for e in errors],
                         "warnings": [w.to_dict() for w in warnings]})

    @extend_schema(methods=["GET"], request=None, responses=VersionSerializer(many=True))
    @extend_schema(methods=["POST"], request=NewVersionSerializer,
                   responses={201: VersionDetailSerializer})
    @action(detail=True, methods=["get", "post"])
    def versions(self, request, pk=None):
        """GET: the versions, newest first. POST: freeze the draft as the next version."""
        pipeline = self.get_object()
        if request.method == "GET":
            versions = pipeline.versions.select_related("created_by").order_by("-number")
            page = self.paginate_queryset(versions)
            return self.get_paginated_response(VersionSerializer(page, many=True).data)
        body = NewVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.publish_version(pipeline, message=body.validated_data["message"],
                                           user=request.user)
        return Response(_version_detail(version), status=status.HTTP_201_CREATED)

    @extend_schema(responses=VersionDetailSerializer)
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)")
    def version(self, request, pk=None, number=None):
        """One version with its spec and what changed since the version before it."""
        pipeline = self.get_object()
        version = pipeline.versions.select_related("created_by").filter(number=number).first()
        if version is None:
            raise Http404
        return Response(_version_detail(version))


def _version_detail(version: PipelineVersion) -> dict[str, Any]:
    previous = services.previous_version(version)
    version.previous = previous.number if previous else None
    version.diff = services.diff_specs(previous.spec if previous else None, version.spec)
    return VersionDetailSerializer(version).data


# --- Endpoints --------------------------------------------------------------------------------


class EndpointSerializer(serializers.ModelSerializer):
    pipeline_name = serializers.CharField(source="pipeline.name", read_only=True)
    default_version = serializers.IntegerField(source="default_version.number", read_only=True)

    class Meta:
        model = Endpoint
        fields = ["id", "workspace", "name", "description", "pipeline", "pipeline_name",
                  "default_version", "enabled", "created_at", "updated_at"]
        read_only_fields = fields


class NewEndpointSerializer(StrictSerializer):
    pipeline = ScopedPrimaryKeyField(Pipeline)
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(allow_blank=True, default="")
    default_version = serializers.IntegerField(
        required=False, min_value=1, help_text="A version number; the latest if left out.")
    enabled = serializers.BooleanField(default=True)


class EndpointChangeSerializer(StrictSerializer):
    description = serializers.CharField(allow_blank=True, required=False)
    default_version = serializers.IntegerField(required=False, min_value=1,
                                               help_text="Republish: the version to run.")
    enabled = serializers.BooleanField(required=False)


WORKSPACE_PARAM = OpenApiParameter(
    "workspace", int, allow_blank=True,
    description="Which of your workspaces, when several have an endpoint of this name.")


@extend_schema_view(
    retrieve=extend_schema(parameters=[WORKSPACE_PARAM]),
    create=extend_schema(request=NewEndpointSerializer, responses={201: EndpointSerializer}),
    partial_update=extend_schema(request=EndpointChangeSerializer,
                                 responses=EndpointSerializer, parameters=[WORKSPACE_PARAM]),
    destroy=extend_schema(parameters=[WORKSPACE_PARAM]),
)
class EndpointViewSet(viewsets.ModelViewSet):
    """Published pipelines, by name. PATCH default_version republishes in one call."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    serializer_class = EndpointSerializer
    lookup_field = "name"
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    token_scope = "publish"
    filter_backends = [QueryFilters, SearchFilter]
    search_fields = ["name", "description", "pipeline__name"]
    query_filters = {"workspace": ("workspace_id", int), "pipeline": ("pipeline_id", int)}

    def get_queryset(self):
        return (Endpoint.objects.filter(workspace__in=workspaces(self.request))
                .select_related("pipeline", "default_version").order_by("name", "id"))

    def get_object(self) -> Endpoint:
        endpoint = one_named(self.request, self.get_queryset().filter(name=self.kwargs["name"]),
                             "an endpoint")
        self.check_object_permissions(self.request, endpoint)
        return endpoint

    def create(self, request, *args, **kwargs):
        body = NewEndpointSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = body.validated_data
        pipeline = data["pipeline"]
        require_role(request, pipeline.workspace_id, Role.EDITOR)
        check_unique_name(Endpoint, pipeline.workspace_id, data["name"])
        version = (version_of(pipeline, data["default_version"]) if "default_version" in data
                   else pipeline.versions.order_by("-number").first())
        if version is None:
            raise ValidationError({"default_version": ["The pipeline has no version yet; "
                                                       "publish one first."]})
        endpoint = services.create_endpoint(pipeline, name=data["name"], version=version,
                                            description=data["description"],
                                            enabled=data["enabled"])
        return Response(EndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        endpoint = self.get_object()
        body = EndpointChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        if "default_version" in changes:
            changes["default_version"] = version_of(endpoint.pipeline,
                                                    changes["default_version"])
        services.update_endpoint(endpoint, **changes)
        return Response(EndpointSerializer(endpoint).data)

    def perform_destroy(self, endpoint: Endpoint) -> None:
        services.delete_endpoint(endpoint)


# --- Schedules --------------------------------------------------------------------------------


class ScheduleSerializer(serializers.ModelSerializer):
    endpoint_name = serializers.CharField(source="endpoint.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True,
                                       read_only=True)
    next_run_at = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = ["id", "workspace", "endpoint", "endpoint_name", "name", "cron", "time_zone",
                  "parameters", "enabled", "next_run_at", "created_by", "created_at"]
        read_only_fields = fields

    def get_next_run_at(self, schedule: Schedule) -> datetime | None:
        """When it fires next; null while paused."""
        return services.next_run_at(schedule)


class ScheduleChangeSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    cron = serializers.CharField(max_length=100, required=False,
                                 help_text="minute hour day-of-month month day-of-week")
    time_zone = serializers.CharField(max_length=64, required=False)
    parameters = serializers.DictField(required=False)
    enabled = serializers.BooleanField(required=False)

    def validate_cron(self, value: str) -> str:
        try:
            services.parse_cron(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return value

    def validate_time_zone(self, value: str) -> str:
        try:
            return services.check_time_zone(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class NewScheduleSerializer(ScheduleChangeSerializer):
    endpoint = ScopedPrimaryKeyField(Endpoint)
    name = serializers.CharField(max_length=100)
    cron = serializers.CharField(max_length=100,
                                 help_text="minute hour day-of-month month day-of-week")
    time_zone = serializers.CharField(max_length=64, default="UTC")
    parameters = serializers.DictField(default=dict)
    enabled = serializers.BooleanField(default=True)


@extend_schema_view(
    create=extend_schema(request=NewScheduleSerializer, responses={201: ScheduleSerializer}),
    partial_update=extend_schema(request=ScheduleChangeSerializer, responses=ScheduleSerializer),
)
class ScheduleViewSet(viewsets.ModelViewSet):
    """Cron schedules that run an endpoint; a paused one (enabled false) starts nothing."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    serializer_class = ScheduleSerializer
    token_scope = "publish"
    filter_backends = [QueryFilters, SearchFilter]
    search_fields = ["name", "endpoint__name"]
    query_filters = {"workspace": ("workspace_id", int), "endpoint": ("endpoint_id", int)}

    def get_queryset(self):
        return (Schedule.objects.filter(workspace__in=workspaces(self.request))
                .select_related("endpoint", "created_by").order_by("name", "id"))

    def create(self, request, *args, **kwargs):
        body = NewScheduleSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        endpoint = data.pop("endpoint")
        require_role(request, endpoint.workspace_id, Role.EDITOR)
        schedule = services.create_schedule(endpoint, user=request.user, **data)
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        schedule = self.get_object()
        body = ScheduleChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.update_schedule(schedule, **body.validated_data)
        return Response(ScheduleSerializer(schedule).data)

    def perform_destroy(self, schedule: Schedule) -> None:
        services.delete_schedule(schedule)

