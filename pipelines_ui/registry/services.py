"""The model registry, and the built-in steps that read or write a registry.

`dataset`, `register-dataset`, `register-model` and `deploy-model` run on a worker like any
step, but what they mean happens here, on the server, at two moments the run engine asks about
(through the hooks apps.py registers in `runs.engine.component_hooks`):

- when the step starts: `registry_inputs()` resolves a dataset version to its artifact (an
  input of the step, so it counts in the step's fingerprint) and `start_problem()` says why a
  step cannot start (an unknown dataset, a model that was never registered);
- when it succeeds: `record_step_success()` registers or deploys, inside the transaction that
  records the step's outputs, with the step run as lineage.

A reused step does neither again: its registration happened when it first ran.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from pipelines_ui.data.models import Artifact, Dataset, DatasetVersion
from pipelines_ui.data.services import add_dataset_version
from pipelines_ui.registry.models import ModelVersion, RegisteredModel
from pipelines_ui.runs.models import MetricPoint, Run, StepRun
from runner.components import dataset, deploy_model, register_dataset, register_model

log = logging.getLogger(__name__)

DATASET = dataset.COMPONENT.key
REGISTER_DATASET = register_dataset.COMPONENT.key
REGISTER_MODEL = register_model.COMPONENT.key
DEPLOY_MODEL = deploy_model.COMPONENT.key
REGISTRY_COMPONENTS = {DATASET, REGISTER_DATASET, REGISTER_MODEL, DEPLOY_MODEL}


# --- The model registry ---------------------------------------------------------------------


def register_model_version(workspace_id: int, name: str, *, artifact: Artifact,
                           metrics: dict[str, float] | None = None, description: str = "",
                           user=None, step_run: StepRun | None = None) -> ModelVersion:
    """Register `artifact` as the next version of model `name` (created if new)."""
    with transaction.atomic():
        model, _ = RegisteredModel.objects.get_or_create(workspace_id=workspace_id, name=name)
        # The model row's lock orders concurrent registrations, so numbers never collide.
        RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()
        latest = model.versions.order_by("-number").values_list("number", flat=True).first()
        return ModelVersion.objects.create(
            model=model, number=(latest or 0) + 1, artifact=artifact, metrics=metrics or {},
            description=description, created_by=user, step_run=step_run)


def deploy_version(version: ModelVersion) -> ModelVersion:
    """Serve the version at its scoring endpoint (idempotent)."""
    if version.deployed_at is None:
        version.deployed_at = timezone.now()
        version.save(update_fields=["deployed_at"])
    return version


def undeploy_version(version: ModelVersion) -> ModelVersion:
    if version.deployed_at is not None:
        version.deployed_at = None
        version.save(update_fields=["deployed_at"])
    return version


# --- Registry steps: when they start --------------------------------------------------------


def registry_inputs(workspace_id: int, component: str, params: dict[str, Any]
                    ) -> dict[str, str]:
    """Inputs the server adds to a step: for a dataset step, the resolved version's digest."""
    if component != DATASET:
        return {}
    version = _dataset_version(workspace_id, params.get("name", ""), params.get("version", 0))
    return {dataset.DATASET_INPUT: version.artifact.digest} if version else {}


def start_problem(workspace_id: int, component: str, params: dict[str, Any],
                  inputs: dict[str, str]) -> str | None:
    """Why a registry step cannot start, in one sentence; None when it can."""
    if component not in REGISTRY_COMPONENTS:
        return None
    name = params.get("name", "")
    if not name:
        return f"{component} needs a name: which dataset or model it is about"
    if component == DATASET and dataset.DATASET_INPUT not in inputs:
        return _missing_dataset(workspace_id, name, params.get("version", 0))
    if component == DEPLOY_MODEL and _version_holding(workspace_id, name,
                                                      inputs.get("model")) is None:
        return (f"model {name!r} has no registered version holding this model; put a "
                f"register-model step named {name!r} before deploy-model")
    return None


def _dataset_version(workspace_id: int, name: str, number: int) -> DatasetVersion | None:
    versions = DatasetVersion.objects.filter(dataset__workspace=workspace_id,
                                             dataset__name=name).select_related("artifact")
    if number:
        return versions.filter(number=number).first()
    return versions.order_by("-number").first()


def _missing_dataset(workspace_id: int, name: str, number: int) -> str:
    found = Dataset.objects.filter(workspace=workspace_id, name=name).first()
    if found is None:
        return f"no dataset named {name!r} in this workspace"
    if number:
        return f"dataset {name!r} has no version {number}"
    return f"dataset {name!r} has no versions yet"


def _version_holding(workspace_id: int, name: str, digest: str | None) -> ModelVersion | None:
    """The latest version of model `name` whose artifact has this digest."""
    if not digest:
        return None
    return (ModelVersion.objects.filter(model__workspace=workspace_id, model__name=name,
                                        artifact__digest=digest)
            .order_by("-number").first())


# --- Registry steps: when they succeed ------------------------------------------------------


def record_step_success(run: Run, step: StepRun) -> None:
    """Register or deploy for a registry step of `run` that just succeeded (call inside the
    transaction that records its outputs)."""
    if step.component not in REGISTRY_COMPONENTS:
        return
    name = step.params.get("name", "")
    if step.component == REGISTER_DATASET:
        dataset_row, _ = Dataset.objects.get_or_create(workspace_id=run.workspace_id, name=name)
        version = add_dataset_version(
            dataset_row, artifact=_input_artifact(run, step, "data"),
            description=step.params.get("description", ""), user=run.triggered_by)
        DatasetVersion.objects.filter(pk=version.pk).update(step_run=step)
    elif step.component == REGISTER_MODEL:
        register_model_version(
            run.workspace_id, name, artifact=_input_artifact(run, step, "model"),
            metrics=_logged_metrics(step), description=step.params.get("description", ""),
            user=run.triggered_by, step_run=step)
    elif step.component == DEPLOY_MODEL:
        version = _version_holding(run.workspace_id, name, step.inputs.get("model"))
        if version is None:  # removed since the step started; the run page shows the step
            log.warning("step run %s: no version of model %r to deploy", step.pk, name)
            return
        deploy_version(version)


def _input_artifact(run: Run, step: StepRun, port: str) -> Artifact:
    return Artifact.objects.get(workspace=run.workspace_id, digest=step.inputs[port])


def _logged_metrics(step: StepRun) -> dict[str, float]:
    """The last value of each metric the step's current attempt logged."""
    points = (MetricPoint.objects.filter(step_run=step, attempt=step.attempt)
              .order_by("index").values_list("key", "value"))
    return dict(points)
