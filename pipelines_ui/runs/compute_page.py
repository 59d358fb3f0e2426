"""The compute page (/compute/): each target's workers, slots in use, queue depth and running
steps.

It lives with runs, not compute, because half of what it shows is steps: the compute app sits
below runs and knows nothing of them. The page renders the status at load and refreshes it
every few seconds from `status` (a light poll is enough here: worker health changes on
heartbeats, not on every event).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_GET

from pipelines_ui.accounts.services import current_workspace
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.runs.models import StepRun

REFRESH_EVERY_S = 2

app_name = "compute"  # a URLconf too (pipelines_ui/urls.py): its names stay compute:*


def targets_status(workspace) -> list[dict[str, Any]]:
    """Every target of the workspace with its live figures: four queries, however many."""
    if workspace is None:
        return []
    targets = list(ComputeTarget.objects.filter(workspace=workspace).prefetch_related("workers")
                   .order_by("name"))
    steps = StepRun.objects.filter(compute_target__in=targets)
    queued = dict(steps.filter(state="queued").values("compute_target")
                  .annotate(n=Count("id")).values_list("compute_target", "n"))
    running: dict[int, list[dict[str, Any]]] = {}
    for step in (steps.filter(state="running").select_related("run__pipeline")
                 .order_by("started_at")[:500]):
        running.setdefault(step.compute_target_id, []).append({
            "run": step.run_id, "pipeline": step.run.pipeline.name, "node": step.node,
            "worker": step.worker, "attempt": step.attempt,
            "started_at": step.started_at.isoformat() if step.started_at else None,
            "url": reverse("runs:detail", args=[step.run_id]),
        })
    result = []
    for target in targets:
        workers = [{"hostname": w.hostname, "state": w.state, "slots": w.slots, "busy": w.busy,
                    "last_seen_at": w.last_seen_at.isoformat(), "isolation": _isolation(w)}
                   for w in target.workers.all()]
        online = [w for w in workers if w["state"] == "online"]
        result.append({
            "name": target.name, "description": target.description,
            "is_default": target.is_default,
            "hardware": target.hardware, "max_concurrency": target.max_concurrency,
            "workers": workers, "online": len(online),
            "slots": sum(w["slots"] for w in online), "busy": sum(w["busy"] for w in online),
            "queued": queued.get(target.pk, 0), "running": running.get(target.pk, []),
        })
    return result


def _isolation(worker) -> dict[str, Any]:
    """How the worker keeps its steps from its own state (S11), as it announced it; a worker
    that did not say is taken as not isolating them."""
    found = (worker.resources or {}).get("isolation") or {}
    level = found.get("level", "none")
    return {"level": level, "description": found.get("description") or
            "WARNING: this worker did not say how its steps are isolated"}


def isolation_rows(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per online worker: its step isolation level, for the page's own table."""
    return [{"target": t["name"], "hostname": w["hostname"], **w["isolation"]}
            for t in targets for w in t["workers"] if w["state"] == "online"]


@login_required
@require_GET
def targets(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    found = targets_status(workspace)
    isolation = isolation_rows(found)
    return render(request, "compute/targets.html", {
        "workspace": workspace, "isolation": isolation,
        "not_isolated": [row for row in isolation if row["level"] == "none"],
        "data": {"targets": found, "statusUrl": reverse("compute:status"),
                 "refreshEveryS": REFRESH_EVERY_S},
    })


@login_required
@require_GET
def status(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"targets": targets_status(current_workspace(request))})


urlpatterns = [
    path("", targets, name="targets"),
    path("status/", status, name="status"),
]
