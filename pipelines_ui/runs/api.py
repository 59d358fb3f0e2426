"""Runs over the API, and the worker side: step reports and heartbeats (runner.messages).

Workers hold no user credentials: a step report carries the attempt's own token, a worker
heartbeat its compute target's worker key. Neither opens any other route (docs/reliability.md S5).
"""

import csv
import io
import json
from datetime import datetime
from typing import Any

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.filters import SearchFilter
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines_ui.api_base import (
    QueryFilters,
    StrictSerializer,
    parse_id,
    token_of,
)
from pipelines_ui.compute.services import record_worker_heartbeat, target_for_worker_key
from pipelines_ui.runs.engine import (
    AttemptStale,
    StepTokenExpired,
    StepTokenInvalid,
    cancel_run,
    ingest_report,
    rerun,
)
from pipelines_ui.runs.models import LogLine, MetricPoint, Run
from pipelines_ui.runs.queries import visible_runs
from pipelines_ui.runs.serializers import (
    RUN_JOINS,
    STEPS,
    RunDetailSerializer,
    RunSerializer,
)
from pipelines_ui.runs.worker_auth import StepTokenForeign, check_step_token, worker_key_is_known
from runner.messages import MessageError, parse_worker_heartbeat

MAX_LOG_PAGE = 5000

_reply = inline_serializer("StepReportReply", {"ok": serializers.BooleanField(),
                                               "cancel": serializers.BooleanField()})


def _credential(request: Request, scheme: str) -> str:
    """The credential after `Authorization: <scheme> `, or ''."""
    header = request.headers.get("Authorization", "")
    prefix = f"{scheme} "
    return header[len(prefix):].strip() if header.startswith(prefix) else ""


class WorkerView(APIView):
    authentication_classes: list = []  # each view checks its own worker credential
    permission_classes = [AllowAny]


class StepEventsView(WorkerView):
    @extend_schema(
        request=inline_serializer("StepReport", {"attempt_id": serializers.CharField(),
                                                 "events": serializers.ListField()}),
        responses={200: _reply, 400: OpenApiResponse(description="malformed report"),
                   401: OpenApiResponse(description="bad token, or its attempt finished "
                                        "(then with \"finished\": true)"),
                   403: OpenApiResponse(description="a token of another step run"),
                   409: OpenApiResponse(description="the attempt is no longer current")},
        tags=["worker"],
    )
    def post(self, request: Request, step_run_id: int) -> Response:
        token = _credential(request, "StepToken")
        if not token:
            return Response({"detail": "Authorization: StepToken <token> is required."},
                            status=status.HTTP_401_UNAUTHORIZED)
        try:
            check_step_token(step_run_id, token)  # before the body is read (S12)
            reply = ingest_report(step_run_id, token, request.data)
        except StepTokenForeign as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
        except StepTokenExpired as exc:  # "finished": a duplicate delivery, expected (R3)
            return Response({"detail": str(exc), "finished": True},
                            status=status.HTTP_401_UNAUTHORIZED)
        except MessageError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except StepTokenInvalid as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_401_UNAUTHORIZED)
        except AttemptStale as exc:
            return Response({"detail": str(exc), "stop": True}, status=status.HTTP_409_CONFLICT)
        return Response(reply)


class WorkerHeartbeatView(WorkerView):
    @extend_schema(
        request=inline_serializer("WorkerHeartbeat", {"hostname": serializers.CharField(),
                                                      "target": serializers.CharField(),
                                                      "slots": serializers.IntegerField(),
                                                      "busy": serializers.IntegerField(),
                                                      "resources": serializers.DictField()}),
        responses={200: inline_serializer("WorkerHeartbeatReply",
                                          {"ok": serializers.BooleanField()})},
        tags=["worker"],
    )
    def post(self, request: Request) -> Response:
        key = _credential(request, "WorkerKey")
        if not worker_key_is_known(key):  # before the body is read (S12)
            return Response({"detail": "Authorization: WorkerKey <a compute target's worker "
                             "key> is required."}, status=status.HTTP_401_UNAUTHORIZED)
        try:
            beat = parse_worker_heartbeat(request.data)
        except MessageError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        target = target_for_worker_key(beat["target"], key)
        if target is None:
            return Response({"detail": "unknown compute target or wrong worker key"},
                            status=status.HTTP_401_UNAUTHORIZED)
        record_worker_heartbeat(target, beat)
        return Response({"ok": True})


worker_urls = [
    path("steps/<int:step_run_id>/events/", StepEventsView.as_view(), name="worker-step-events"),
    path("heartbeat/", WorkerHeartbeatView.as_view(), name="worker-heartbeat"),
]


# --- Runs (people, scripts and the SDK) ------------------------------------------------------


class RerunSerializer(StrictSerializer):
    from_failed = serializers.BooleanField(
        default=False, help_text="Keep what succeeded and run the failed steps and those after "
        "them; false runs every step again.")


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = LogLine
        fields = ["index", "stream", "text", "time"]


class LogPageSerializer(serializers.Serializer):
    node = serializers.CharField()
    attempt = serializers.IntegerField()
    lines = LogLineSerializer(many=True)
    more = serializers.BooleanField(help_text="More lines follow; ask again with after=next.")
    next = serializers.IntegerField(help_text="The index to pass as `after` next time.")


class MetricSeriesSerializer(serializers.Serializer):
    node = serializers.CharField()
    attempt = serializers.IntegerField()
    key = serializers.CharField()
    steps = serializers.ListField(child=serializers.IntegerField(allow_null=True))
    values = serializers.ListField(child=serializers.FloatField())
    times = serializers.ListField(child=serializers.DateTimeField())


class MetricsSerializer(serializers.Serializer):
    series = MetricSeriesSerializer(many=True)


def _utc_iso(moment: datetime) -> str:
    """An aware UTC time as DRF's DateTimeField writes it (ISO 8601, "Z" for UTC)."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class CSVRenderer(BaseRenderer):
    """Rows (a list of dicts) as CSV, for downloads such as a run's metrics."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if not isinstance(data, list):  # an error body: JSON is all a client can use
            return json.dumps(data).encode()
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(data[0]) if data else ["empty"])
        writer.writeheader()
        writer.writerows(data)
        return out.getvalue().encode()


def _visible_runs(request):
    return visible_runs(token_of(request) or request.user)


def run_with_steps(request, run_id: int) -> Run:
    return (_visible_runs(request).select_related(*RUN_JOINS)
            .prefetch_related("tags", STEPS).get(pk=run_id))


def _int_param(request, name: str, default: int | None, low: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    value = -1 if raw == "-1" and low < 0 else parse_id(name, raw)
    if value < low:
        raise ValidationError({name: [f"Must be at least {low}."]})
    return value


@extend_schema_view(
    partial_update=extend_schema(request=RunSerializer, responses=RunSerializer,
                                 description="Change the run's note and tags."),
    retrieve=extend_schema(responses=RunDetailSerializer),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                 viewsets.GenericViewSet):
    """Runs of the caller's workspaces, newest first, each with its steps on the detail."""

    http_method_names = ["get", "post", "patch", "head", "options"]
    token_scope = "run"
    filter_backends = [QueryFilters, SearchFilter]
    search_fields = ["pipeline__name", "note", "tags__name", "endpoint__name"]
    query_filters = {
        "workspace": ("workspace_id", int),
        "pipeline": ("pipeline_id", int),
        "status": ("status", tuple(s for s, _label in Run._meta.get_field("status").choices)),
        "trigger": ("trigger", tuple(Run.Trigger.values)),
        "tag": ("tags__name", str),
        "created_after": ("created_at__gte", datetime),
        "created_before": ("created_at__lt", datetime),
    }

    def get_queryset(self):
        runs = _visible_runs(self.request).select_related(*RUN_JOINS)
        if self.action in ("list", "partial_update", "cancel"):
            return runs.prefetch_related("tags")
        if self.action in ("retrieve", "rerun"):
            return runs.prefetch_related("tags", STEPS)
        return runs

    def get_serializer_class(self):
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel what has not finished; running steps stop through their worker."""
        run = cancel_run(self.get_object().pk)
        return Response(RunSerializer(_visible_runs(request).prefetch_related("tags")
                                      .select_related(*RUN_JOINS).get(pk=run.pk)).data)

    @extend_schema(request=RerunSerializer, responses={201: RunDetailSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        """Run again: every step, or (from_failed) only what failed and what follows it."""
        run = self.get_object()
        body = RerunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        new = rerun(run, from_failed=body.validated_data["from_failed"], user=request.user,
                    token=token_of(request))
        return Response(RunDetailSerializer(run_with_steps(request, new.pk)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, allow_blank=True,
                             description="Only lines after this index."),
            OpenApiParameter("attempt", int, allow_blank=True,
                             description="The attempt (default: the latest)."),
            OpenApiParameter("limit", int, allow_blank=True,
                             description=f"At most this many lines (at most {MAX_LOG_PAGE})."),
        ],
        responses=LogPageSerializer,
    )
    @action(detail=True, methods=["get"], url_path=r"steps/(?P<node>[^/]+)/logs")
    def logs(self, request, pk=None, node=None):
        """A step's output lines in order, from `after` on."""
        run = self.get_object()
        step = run.steps.filter(node=node).first()
        if step is None:
            raise NotFound(f"Run {run.pk} has no step {node}.")
        after = _int_param(request, "after", -1, low=-1)
        attempt = _int_param(request, "attempt", step.attempt)
        limit = min(_int_param(request, "limit", MAX_LOG_PAGE, low=1), MAX_LOG_PAGE)
        lines = list(LogLine.objects.filter(step_run=step, attempt=attempt, index__gt=after)
                     .order_by("index")[:limit + 1])
        more = len(lines) > limit
        lines = lines[:limit]
        return Response(LogPageSerializer({
            "node": node, "attempt": attempt, "lines": lines, "more": more,
            "next": lines[-1].index if lines else after}).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("key", str, allow_blank=True, description="Only this metric."),
            OpenApiParameter("node", str, allow_blank=True, description="Only this step."),
            OpenApiParameter("format", str, allow_blank=True, enum=["json", "csv"],
                             description="csv: one row per point, for a download."),
        ],
        responses={(200, "application/json"): MetricsSerializer,
                   (200, "text/csv"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CSVRenderer])
    def metrics(self, request, pk=None, format=None):
        """The run's metric points, as series (JSON) or rows (CSV)."""
        run = self.get_object()
        points = MetricPoint.objects.filter(run=run).order_by("key", "step_run", "attempt",
                                                              "index")
        for name, lookup in (("key", "key"), ("node", "step_run__node")):
            if request.query_params.get(name):
                points = points.filter(**{lookup: request.query_params[name]})
        rows = points.values_list("step_run__node", "attempt", "key", "step", "value", "time")
        if request.accepted_renderer.format == "csv":
            data = [{"node": n, "attempt": a, "key": k, "step": s, "value": v,
                     "time": t.isoformat()} for n, a, k, s, v, t in rows]
            return Response(data, headers={
                "Content-Disposition": f'attachment; filename="run-{run.pk}-metrics.csv"'})
        series: dict[tuple[str, int, str], dict[str, Any]] = {}
        for node_id, attempt, key, step, value, time in rows:
            one = series.setdefault((node_id, attempt, key), {
                "node": node_id, "attempt": attempt, "key": key, "steps": [], "values": [],
                "times": []})
            one["steps"].append(step)
            one["values"].append(value)
            one["times"].append(_utc_iso(time))
        # Built as MetricsSerializer describes it, without a serializer field call a point: for
        # 100,000 points those calls took a second and more.
        return Response({"series": list(series.values())})
