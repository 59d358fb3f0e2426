"""The REST API: one router for the viewsets, the worker routes, the schema and its docs.

The schema and its docs are public (no data in them, and integrators need them before they
hold a token); every other route needs a session or a token (tests/integration/api/
test_authentication_required.py walks them all).
"""

from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.exceptions import NotFound
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from pipelines_ui.accounts.api import TokenViewSet, WorkspaceViewSet
from pipelines_ui.accounts.socket_tickets import SocketTicketView
from pipelines_ui.compute.api import ComputeTargetViewSet
from pipelines_ui.data.api import ArtifactViewSet, DatasetViewSet, DatastoreViewSet
from pipelines_ui.pipelines.api import (
    ComponentViewSet,
    EndpointViewSet,
    PipelineViewSet,
    ScheduleViewSet,
)
from pipelines_ui.registry.api import RegisteredModelViewSet, ScoreView
from pipelines_ui.runs import api as runs_api
from pipelines_ui.runs.trigger_api import EndpointRunViewSet, PipelineRunViewSet
from pipelines_ui.secrets.api import SecretViewSet


class NoSuchRoute(APIView):
    """Any /api/ path no route matched: a JSON 404 (after authentication), not an HTML page."""

    schema = None  # not an operation of the API

    def handle(self, request, *args, **kwargs):
        raise NotFound("No such API route.")

    get = post = put = patch = delete = handle


router = DefaultRouter()
router.include_format_suffixes = False  # JSON only (a CSV download says ?format=csv)
# What starts a run, at paths under the pipelines' and endpoints' own; first, so that the API
# root names the viewsets registered after them under the same prefix.
router.register("pipelines", PipelineRunViewSet, basename="pipeline-trigger")
router.register("endpoints", EndpointRunViewSet, basename="endpoint-trigger")
router.register("workspaces", WorkspaceViewSet, basename="workspace")
router.register("components", ComponentViewSet, basename="component")
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("runs", runs_api.RunViewSet, basename="run")
router.register("endpoints", EndpointViewSet, basename="endpoint")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("compute-targets", ComputeTargetViewSet, basename="compute-target")
router.register("datastores", DatastoreViewSet, basename="datastore")
router.register("artifacts", ArtifactViewSet, basename="artifact")
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("models", RegisteredModelViewSet, basename="model")
router.register("tokens", TokenViewSet, basename="token")
router.register("secrets", SecretViewSet, basename="secret")

urlpatterns = [
    path("", include(router.urls)),
    # No trailing slash: the scoring URL clients call (docs/api.md, Models).
    re_path(r"^models/(?P<name>[-a-zA-Z0-9_]+)/versions/(?P<number>[0-9]{1,9})/score$",
            ScoreView.as_view(), name="model-score"),
    path("socket-tickets/", SocketTicketView.as_view(), name="socket-ticket"),
    path("worker/", include(runs_api.worker_urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI's start-up script comes from this URL (?script), not inline: the page's
    # Content-Security-Policy runs no inline script (S18).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    # ReDoc was dropped: its sidebar always fetches a logo from a CDN. Old links land on the docs.
    path("redoc/", RedirectView.as_view(pattern_name="docs"), name="redoc"),
    # Last: any other /api/ path is a JSON 404 (after authentication), not Django's HTML page.
    re_path(r"^", NoSuchRoute.as_view(), name="no-such-route"),
]
