"""The API routes that start a run, or plan one: they live with runs, beside the pipelines'
and endpoints' own routes, at the same paths (api_urls registers them first).

- POST /api/pipelines/<id>/runs/: a run of the draft or of a version;
- POST /api/pipelines/<id>/plan/: which steps a run would reuse and which it would run, and why;
- POST /api/endpoints/<name>/runs/: a run of the endpoint.

Each run trigger is rate-limited and capped (limits.py, docs/reliability.md S9).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from pipelines_ui.accounts.models import Role
from pipelines_ui.api_base import StrictSerializer, one_named, token_of, workspaces
from pipelines_ui.api_errors import Conflict
from pipelines_ui.pipelines import services as pipeline_services
from pipelines_ui.pipelines.api import WORKSPACE_PARAM, ErrorListSerializer, version_of
from pipelines_ui.pipelines.models import Endpoint, Pipeline
from pipelines_ui.runs import limits
from pipelines_ui.runs.api import RunDetailSerializer, run_with_steps
from pipelines_ui.runs.engine import EndpointDisabled, invoke_endpoint, plan_run, submit_run


class RunRequestSerializer(StrictSerializer):
    parameters = serializers.DictField(default=dict)
    version = serializers.IntegerField(required=False, min_value=1,
                                       help_text="A version number; the draft if left out.")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), default=list,
                                 max_length=50)
    note = serializers.CharField(allow_blank=True, default="")


class PlanRequestSerializer(StrictSerializer):
    parameters = serializers.DictField(default=dict)
    version = serializers.IntegerField(required=False, min_value=1)


class PlanStepSerializer(serializers.Serializer):
    node = serializers.CharField()
    action = serializers.ChoiceField(choices=["reuse", "run"])
    reason = serializers.CharField(allow_blank=True)
    reused_from = serializers.IntegerField(allow_null=True, help_text="The run reused from.")


class PlanSerializer(serializers.Serializer):
    steps = PlanStepSerializer(many=True)
    warnings = ErrorListSerializer(many=True, help_text="Steps that would wait, such as one "
                                   "whose target has no worker online.")


class InvokeSerializer(StrictSerializer):
    parameters = serializers.DictField(default=dict)
    version = serializers.IntegerField(required=False, min_value=1,
                                       help_text="A version number; the default if left out.")


class PipelineRunViewSet(viewsets.GenericViewSet):
    """Runs and plans of a pipeline (routed under /api/pipelines/<id>/)."""

    queryset = Pipeline.objects.none()  # for the schema; get_queryset scopes
    token_scope = "run"
    write_role = Role.EDITOR

    def get_queryset(self):
        return Pipeline.objects.filter(workspace__in=workspaces(self.request))

    def get_serializer_class(self):  # what the body holds (OPTIONS describes it)
        return PlanRequestSerializer if self.action == "plan" else RunRequestSerializer

    @extend_schema(request=RunRequestSerializer, responses={201: RunDetailSerializer})
    @action(detail=True, methods=["post"])
    def runs(self, request, pk=None):
        """Start a run of the draft, or of a version."""
        pipeline = self.get_object()
        limits.check_trigger_rate(request, pipeline)
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        with limits.run_slot(pipeline):
            run = submit_run(pipeline, parameters=data["parameters"],
                             version=version_of(pipeline, data.get("version")),
                             user=request.user, token=token_of(request), tags=data["tags"],
                             note=data["note"])
        return Response(RunDetailSerializer(run_with_steps(request, run.pk)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=PlanRequestSerializer, responses=PlanSerializer)
    @action(detail=True, methods=["post"], token_scope="read", write_role=Role.VIEWER)
    def plan(self, request, pk=None):
        """Before a run: which steps would be reused and which would run, and why."""
        pipeline = self.get_object()
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = version_of(pipeline, data.get("version"))
        steps = plan_run(pipeline, parameters=data["parameters"], version=version)
        _, warnings = pipeline_services.spec_problems(pipeline.workspace,
                                                      version.spec if version else pipeline.spec)
        return Response({"steps": steps, "warnings": [w.to_dict() for w in warnings]})


class EndpointRunViewSet(viewsets.GenericViewSet):
    """Runs of an endpoint (routed under /api/endpoints/<name>/)."""

    queryset = Endpoint.objects.none()  # for the schema; get_queryset scopes
    lookup_field = "name"
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    token_scope = "endpoint:invoke"
    serializer_class = InvokeSerializer  # what the body holds (OPTIONS describes it)

    def get_queryset(self):
        return (Endpoint.objects.filter(workspace__in=workspaces(self.request))
                .select_related("pipeline", "default_version"))

    def get_object(self) -> Endpoint:
        endpoint = one_named(self.request, self.get_queryset().filter(name=self.kwargs["name"]),
                             "an endpoint")
        self.check_object_permissions(self.request, endpoint)
        return endpoint

    @extend_schema(request=InvokeSerializer, responses={201: RunDetailSerializer},
                   parameters=[WORKSPACE_PARAM])
    @action(detail=True, methods=["post"])
    def runs(self, request, name=None):
        """Start a run of the endpoint (its default version unless `version` is given)."""
        endpoint = self.get_object()
        limits.check_trigger_rate(request, endpoint)
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            with limits.run_slot(endpoint):
                run = invoke_endpoint(
                    endpoint, parameters=data["parameters"],
                    version=version_of(endpoint.pipeline, data.get("version")),
                    user=request.user, token=token_of(request))
        except EndpointDisabled as exc:
            raise Conflict(str(exc)) from None
        return Response(RunDetailSerializer(run_with_steps(request, run.pk)).data,
                        status=status.HTTP_201_CREATED)
