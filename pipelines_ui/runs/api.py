"""The worker side of the API: step reports and worker heartbeats (runner.messages).

Workers hold no user credentials: a step report carries the attempt's own token, a worker
heartbeat its compute target's worker key. Neither opens any other route (RELIABILITY S5).
"""

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines_ui.compute.services import record_worker_heartbeat, target_for_worker_key
from pipelines_ui.runs.services import AttemptStale, StepTokenInvalid, ingest_report
from runner.messages import MessageError, parse_worker_heartbeat

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
                   401: OpenApiResponse(description="bad token"),
                   409: OpenApiResponse(description="the attempt is no longer current")},
        tags=["worker"],
    )
    def post(self, request: Request, step_run_id: int) -> Response:
        token = _credential(request, "StepToken")
        if not token:
            return Response({"detail": "Authorization: StepToken <token> is required."},
                            status=status.HTTP_401_UNAUTHORIZED)
        try:
            reply = ingest_report(step_run_id, token, request.data)
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
        try:
            beat = parse_worker_heartbeat(request.data)
        except MessageError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        target = target_for_worker_key(beat["target"], _credential(request, "WorkerKey"))
        if target is None:
            return Response({"detail": "unknown compute target or wrong worker key"},
                            status=status.HTTP_401_UNAUTHORIZED)
        record_worker_heartbeat(target, beat)
        return Response({"ok": True})


worker_urls = [
    path("steps/<int:step_run_id>/events/", StepEventsView.as_view(), name="worker-step-events"),
    path("heartbeat/", WorkerHeartbeatView.as_view(), name="worker-heartbeat"),
]
