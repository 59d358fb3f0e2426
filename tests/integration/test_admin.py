"""Every model has a working admin: its list, its add form and an object's page load."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.compute.models import Worker
from pipelines_ui.data.models import Artifact, Dataset, DatasetVersion, Datastore
from pipelines_ui.pipelines.models import Component, Endpoint, Pipeline, PipelineVersion, Schedule
from pipelines_ui.runs.models import LogLine, MetricPoint, Run, RunTag, StepRun

DIGEST = "sha256:" + "ab" * 32
OUR_APPS = {"accounts", "pipelines", "runs", "compute", "data"}


@pytest.fixture
def one_of_each(workspace, owner, local_target):
    pipeline = Pipeline.objects.create(workspace=workspace, name="p")
    version = PipelineVersion.objects.create(pipeline=pipeline, number=1, spec=pipeline.spec)
    endpoint = Endpoint.objects.create(workspace=workspace, name="e", pipeline=pipeline,
                                       default_version=version)
    Schedule.objects.create(workspace=workspace, endpoint=endpoint, name="nightly",
                            cron="0 3 * * *")
    Component.objects.create(workspace=workspace, name="mine", version=1, title="Mine")
    run = Run.objects.create(workspace=workspace, pipeline=pipeline, spec=pipeline.spec)
    RunTag.objects.create(run=run, name="baseline")
    step = StepRun.objects.create(run=run, node="a", component="python-script@1")
    now = timezone.now()
    LogLine.objects.create(step_run=step, attempt=1, index=1, stream="stdout", text="hi", time=now)
    MetricPoint.objects.create(run=run, step_run=step, attempt=1, index=1, key="loss", value=1,
                               time=now)
    Worker.objects.create(target=local_target, hostname="w1")
    Datastore.objects.create(workspace=workspace, name="default", url="file:///tmp/x")
    artifact = Artifact.objects.create(workspace=workspace, digest=DIGEST, uri="file:///tmp/x")
    dataset = Dataset.objects.create(workspace=workspace, name="d")
    DatasetVersion.objects.create(dataset=dataset, number=1, artifact=artifact)
    ApiToken.issue(workspace, owner, "ci", ["read"])


@pytest.mark.usefixtures("one_of_each")
def test_every_admin_page_loads(client):
    superuser = get_user_model().objects.create_superuser("root", password="a-long-password-1")
    client.force_login(superuser)
    assert client.get(reverse("admin:index")).status_code == 200
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        name = f"admin:{meta.app_label}_{meta.model_name}"
        assert client.get(reverse(f"{name}_changelist")).status_code == 200, name
        if model_admin.has_add_permission(_request(superuser)):
            assert client.get(reverse(f"{name}_add")).status_code == 200, name
        if meta.app_label not in OUR_APPS:
            continue
        instance = model.objects.first()
        assert instance is not None, f"the fixture makes no {meta.model_name}"
        change = client.get(reverse(f"{name}_change", args=[instance.pk]))
        assert change.status_code == 200, name


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    return request
