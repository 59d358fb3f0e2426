"""Pipeline pages: the list with a "New pipeline" form, the editor, and read-only versions.

The pages render what the editor needs at load (the draft, the palette, compute targets,
versions, endpoints) with `json_script`; every change after that goes through the REST API.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from pipelines_ui.accounts.services import current_workspace, member_workspaces, membership
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Endpoint, Pipeline, PipelineVersion
from pipelines_ui.pipelines.services import component_registry, create_pipeline
from runner.components import BUILTINS

# Stands in for an id in URLs handed to the editor; it puts the real id in its place.
ID_PLACEHOLDER = 999999999


class NewPipelineForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, workspace=None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Pipeline.objects.filter(workspace=self.workspace, name=name).exists():
            raise forms.ValidationError("A pipeline with this name already exists here.")
        return name


def _pipeline_for(request: HttpRequest, pipeline_id: int) -> Pipeline:
    """The pipeline if it is in one of the user's workspaces; 404 otherwise."""
    return get_object_or_404(
        Pipeline.objects.select_related("workspace"),
        pk=pipeline_id, workspace__in=member_workspaces(request.user),
    )


def _can_edit(request: HttpRequest, pipeline: Pipeline) -> bool:
    member = membership(request.user, pipeline.workspace_id)
    return member is not None and member.allows("editor")


@login_required
def list_pipelines(request: HttpRequest) -> HttpResponse:
    """The current workspace's pipelines, and a form to start a new one."""
    workspace = current_workspace(request)
    member = membership(request.user, workspace.pk) if workspace else None
    can_create = member is not None and member.allows("editor")
    if request.method == "POST" and not can_create:
        raise PermissionDenied("Viewers cannot create pipelines.")
    form = NewPipelineForm(request.POST or None, workspace=workspace)
    if request.method == "POST" and form.is_valid():
        pipeline = create_pipeline(workspace, name=form.cleaned_data["name"],
                                   description=form.cleaned_data["description"],
                                   user=request.user)
        return redirect("pipelines:editor", pipeline_id=pipeline.pk)
    pipelines = (Pipeline.objects.filter(workspace=workspace).select_related("updated_by")
                 .order_by("name") if workspace else [])
    return render(request, "pipelines/list.html", {
        "workspace": workspace, "pipelines": pipelines, "form": form, "can_create": can_create,
    })


def _version_summary(version: PipelineVersion) -> dict[str, Any]:
    return {
        "number": version.number, "message": version.message,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by.get_username() if version.created_by else None,
        "url": reverse("pipelines:version", args=[version.pipeline_id, version.number]),
    }


def _palette(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [
        {**component.to_dict(), "builtin": key in BUILTINS}
        for key, component in sorted(component_registry(pipeline.workspace).items())
    ]


def _editor_data(request: HttpRequest, pipeline: Pipeline) -> dict[str, Any]:
    versions = pipeline.versions.select_related("created_by").order_by("-number")
    endpoints = Endpoint.objects.filter(pipeline=pipeline).select_related("default_version")
    return {
        "pipeline": {"id": pipeline.pk, "name": pipeline.name, "revision": pipeline.revision,
                     "spec": pipeline.spec},
        "workspace": pipeline.workspace_id,
        "components": _palette(pipeline),
        "computeTargets": list(
            ComputeTarget.objects.filter(workspace=pipeline.workspace)
            .order_by("name").values("name", "description", "is_default")
        ),
        "versions": [_version_summary(v) for v in versions],
        "endpoints": [{"name": e.name, "default_version": e.default_version.number}
                      for e in endpoints],
        "canEdit": _can_edit(request, pipeline),
        "origin": request.build_absolute_uri("/").rstrip("/"),
        "runUrl": reverse("runs:detail", args=[ID_PLACEHOLDER]),
        "versionUrl": reverse("pipelines:version", args=[pipeline.pk, ID_PLACEHOLDER]),
        "idPlaceholder": str(ID_PLACEHOLDER),
    }


@login_required
def editor(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    """The drag-and-drop editor of a pipeline's draft."""
    pipeline = _pipeline_for(request, pipeline_id)
    return render(request, "pipelines/editor.html", {
        "pipeline": pipeline, "editor_data": _editor_data(request, pipeline),
    })


@login_required
def version(request: HttpRequest, pipeline_id: int, number: int) -> HttpResponse:
    """One frozen version, read-only, with "restore as draft"."""
    pipeline = _pipeline_for(request, pipeline_id)
    frozen = get_object_or_404(
        PipelineVersion.objects.select_related("created_by"), pipeline=pipeline, number=number
    )
    data = {
        "pipeline": {"id": pipeline.pk, "name": pipeline.name, "revision": pipeline.revision},
        "version": {**_version_summary(frozen), "spec": frozen.spec},
        "components": _palette(pipeline),
        "canEdit": _can_edit(request, pipeline),
        "editorUrl": reverse("pipelines:editor", args=[pipeline.pk]),
    }
    return render(request, "pipelines/version.html", {
        "pipeline": pipeline, "frozen": frozen, "version_data": data,
    })
