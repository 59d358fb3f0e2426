"""Run pages: the history, one run (live over /ws/runs/<id>/), and a comparison of runs.

Pages render what they need at load; the run page's live data arrives over the WebSocket and
its gaps are filled from the REST API (docs/reliability.md R9).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from pipelines_ui.accounts.services import current_workspace
from pipelines_ui.runs import previews, queries
from pipelines_ui.runs.models import LogLine, Run, StepRun
from pipelines_ui.runs.serializers import RUN_JOINS
from runner.transitions import RUN_STATES


def _run_or_404(request: HttpRequest, run_id: int) -> Run:
    run = (queries.visible_runs(request.user).select_related(*RUN_JOINS)
           .filter(pk=run_id).first())
    if run is None:
        raise Http404("No such run.")
    return run


@login_required
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    """Every run of the current workspace, newest first, filtered and keyset-paginated."""
    workspace = current_workspace(request)
    filters = queries.HistoryFilters.from_query(request.GET)
    page = queries.history_page(workspace, filters, after=request.GET.get("after", ""),
                                before=request.GET.get("before", ""))
    base = filters.as_query()
    return render(request, "runs/history.html", {
        "workspace": workspace, "page": page, "filters": filters,
        "pipelines": queries.pipelines_of(workspace), "statuses": RUN_STATES,
        "older_url": f"{request.path}?{urlencode({**base, 'after': page.next_cursor})}"
        if page.next_cursor else "",
        "newer_url": f"{request.path}?{urlencode({**base, 'before': page.prev_cursor})}"
        if page.prev_cursor else "",
        "filtered": bool(base),
    })


@login_required
@require_GET
def detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run page: graph, steps, logs, metrics, timeline and artifacts, live."""
    run = _run_or_404(request, run_id)
    data = queries.run_page_data(run)
    data["urls"] = {
        "socket": f"/ws/runs/{run.pk}/",
        "api": reverse("run-detail", args=[run.pk]),
        "history": reverse("runs:history"),
        "page": reverse("runs:detail", args=[0]).replace("/0/", "/{id}/"),
        "log": reverse("runs:log", args=[run.pk, "NODE"]).replace("NODE", "{node}"),
        "artifact": reverse("runs:artifact", args=[run.pk, "DIGEST"]).replace(
            "DIGEST", "{digest}"),
        "image": reverse("runs:artifact_image", args=[run.pk, "DIGEST"]).replace(
            "DIGEST", "{digest}"),
        "download": "/api/artifacts/{digest}/",
        "compare": reverse("runs:compare"),
    }
    return render(request, "runs/detail.html", {"run": run, "data": data})


@login_required
@require_GET
def step_log(request: HttpRequest, run_id: int, node: str) -> StreamingHttpResponse:
    """The step's whole log, every attempt, as a text download (streamed, any length)."""
    run = _run_or_404(request, run_id)
    step = StepRun.objects.filter(run=run, node=node).first()
    if step is None:
        raise Http404("No such step.")
    response = StreamingHttpResponse(_log_text(step), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-{node}.log"'
    return response


def _log_text(step: StepRun) -> Iterator[str]:
    attempt = None
    lines = (LogLine.objects.filter(step_run=step).order_by("attempt", "index")
             .values_list("attempt", "stream", "time", "text").iterator(chunk_size=2000))
    for number, stream, moment, text in lines:
        if number != attempt:
            attempt = number
            yield f"=== attempt {number} ===\n"
        yield f"{moment.isoformat(timespec='milliseconds')} {stream:<6} {text}\n"


@login_required
@require_GET
def artifact(request: HttpRequest, run_id: int, digest: str) -> JsonResponse:
    """An artifact of the run: its files, and with ?path= a preview of one of them."""
    run = _run_or_404(request, run_id)
    found = queries.run_artifact(run, digest)
    if found is None:
        raise Http404("No such artifact in this run.")
    try:
        if "path" in request.GET:
            return JsonResponse(previews.preview(found, request.GET["path"]))
        return JsonResponse({"digest": found.digest, "size": found.size,
                             "files": previews.list_files(found)})
    except FileNotFoundError as exc:
        return JsonResponse({"detail": str(exc)}, status=404)


@login_required
@require_GET
def artifact_image(request: HttpRequest, run_id: int, digest: str) -> FileResponse:
    """One image file of an artifact, inline, for the preview."""
    run = _run_or_404(request, run_id)
    found = queries.run_artifact(run, digest)
    if found is None:
        raise Http404("No such artifact in this run.")
    try:
        file, content_type = previews.open_image(found, request.GET.get("path", ""))
    except FileNotFoundError as exc:
        raise Http404(str(exc)) from None
    return FileResponse(file, content_type=content_type)


@login_required
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    """Runs of a pipeline side by side: parameters (differences marked) and metrics overlaid."""
    workspace = current_workspace(request)
    run_ids = [int(v) for v in request.GET.getlist("runs") if v.isdigit()]
    comparison = queries.compare_runs(workspace, run_ids)
    pipeline_id = request.GET.get("pipeline", "")
    if not pipeline_id.isdigit():
        pipeline_id = str(comparison.runs[0].pipeline_id) if comparison.runs else ""
    candidates = queries.recent_runs_of(workspace, int(pipeline_id) if pipeline_id else None)
    return render(request, "runs/compare.html", {
        "comparison": comparison, "pipelines": queries.pipelines_of(workspace),
        "pipeline_id": int(pipeline_id) if pipeline_id else None, "candidates": candidates,
        "chosen": {r.pk for r in comparison.runs},
        "data": {"runs": [{"id": r.pk, "label": f"#{r.pk}"} for r in comparison.runs],
                 "metrics": reverse("run-metrics", args=[0]).replace("/0/", "/{id}/")},
    })
