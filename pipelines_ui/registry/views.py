"""The models page: each registered model of the workspace, its versions with their metrics,
where they came from, and which are deployed (with the request that scores them)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from pipelines_ui.accounts.services import current_workspace
from pipelines_ui.registry.models import ModelVersion, RegisteredModel


@login_required
@require_GET
def models(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    registered = []
    if workspace is not None:  # two queries, however many models and versions
        versions = ModelVersion.objects.select_related("step_run").order_by("-number")
        registered = list(RegisteredModel.objects.filter(workspace=workspace)
                          .prefetch_related(Prefetch("versions", queryset=versions)))
    return render(request, "registry/models.html", {
        "workspace": workspace, "models": registered,
        "server": request.build_absolute_uri("/").rstrip("/"),
    })
