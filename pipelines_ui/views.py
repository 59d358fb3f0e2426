from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from pipelines_ui.accounts.services import current_workspace
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.models import Run


@login_required
def home(request):
    """The workspace at a glance: its pipelines and latest runs."""
    workspace = current_workspace(request)
    pipelines = Pipeline.objects.filter(workspace=workspace).order_by("-updated_at")[:20]
    runs = (
        Run.objects.filter(workspace=workspace)
        .select_related("pipeline", "version")
        .order_by("-created_at")[:20]
    )
    return render(
        request, "home.html", {"workspace": workspace, "pipelines": pipelines, "runs": runs}
    )
