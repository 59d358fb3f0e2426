"""Starting runs: submit (freeze the spec and parameters, create the steps, start what is
ready), for a caller, an endpoint, a schedule or a rerun; plan (what a run would reuse and why);
cancel.

The run is committed before any job is sent, so a broker outage leaves it queued, never lost
(R5).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.data.models import Artifact
from pipelines_ui.pipelines.models import Endpoint, Pipeline, PipelineVersion, Schedule
from pipelines_ui.pipelines.services import check_spec, component_registry, schedule_to_fire
from pipelines_ui.runs.engine.advance import advance, advance_run
from pipelines_ui.runs.engine.component_hooks import extra_inputs
from pipelines_ui.runs.engine.dispatch import snapshot_digest
from pipelines_ui.runs.engine.frozen_spec import remember
from pipelines_ui.runs.engine.locks import locked_run
from pipelines_ui.runs.engine.reuse import (
    input_digests,
    node_parts,
    previous_parts,
    reusable_steps,
)
from pipelines_ui.runs.models import Run, RunTag, StepRun
from pipelines_ui.secrets.services import defined_names
from runner.components import ComponentDef
from runner.fingerprint import explain_changes, fingerprint
from runner.graph import topological_order
from runner.spec import Spec, SpecError, SpecInvalid, check_run_parameters, resolve_params


def submit_run(
    pipeline: Pipeline,
    *,
    parameters: dict[str, Any] | None = None,
    version: PipelineVersion | None = None,
    user=None,
    token: ApiToken | None = None,
    trigger: str = Run.Trigger.USER,
    endpoint: Endpoint | None = None,
    schedule: Schedule | None = None,
    rerun_of: Run | None = None,
    tags: Iterable[str] = (),
    note: str = "",
    spec_document: dict[str, Any] | None = None,
    allow_reuse: bool = True,
    carried: dict[str, StepRun] | None = None,
) -> Run:
    """Freeze the spec and parameters, create the step runs and start what is ready.

    The spec is `spec_document` if given, else the version's, else the pipeline's draft.
    `carried` steps (node -> an earlier succeeded step) start as reused (rerun from failed).
    Raises SpecInvalid for a bad spec, bad parameters or an unknown compute target. The run is
    committed before any job is sent, so a broker outage leaves it queued, never lost (R5).
    """
    workspace = pipeline.workspace
    document = spec_document or (version.spec if version else pipeline.spec)
    registry = component_registry(workspace)
    spec, values = _checked(workspace, document, parameters, registry)
    targets = _compute_targets(workspace, spec)
    carried = carried or {}
    with transaction.atomic():
        run = Run.objects.create(
            workspace=workspace, pipeline=pipeline, version=version, spec=spec.to_dict(),
            parameters=values, trigger=trigger, triggered_by=user, token=token,
            endpoint=endpoint, schedule=schedule, rerun_of=rerun_of, note=note,
            allow_reuse=allow_reuse,
        )
        remember(run, spec, registry)
        RunTag.objects.bulk_create([RunTag(run=run, name=tag) for tag in set(tags)])
        StepRun.objects.bulk_create([
            StepRun(run=run, node=node.id, component=node.component,
                    compute_target=targets[node.compute], allow_reuse=node.allow_reuse)
            for node in spec.nodes
        ])
        for step in run.steps.filter(node__in=carried):
            step.reuse_from(carried[step.node])
        advance_run(run.pk, starting=True)
    run.refresh_from_db()
    return run


def _checked(workspace, document: Any, parameters: dict[str, Any] | None,
             registry: dict[str, ComponentDef] | None = None) -> tuple[Spec, dict[str, Any]]:
    spec = check_spec(workspace, document, registry)
    values, errors = check_run_parameters(spec, parameters or {})
    if errors:
        raise SpecInvalid(errors, "The run parameters are invalid.")
    errors = _missing_snapshots(workspace, spec, values) + _undefined_secrets(workspace, spec)
    if errors:
        raise SpecInvalid(errors, "A step needs something this workspace does not hold.")
    return spec, values


def _undefined_secrets(workspace, spec: Spec) -> list[SpecError]:
    """A declared secret the workspace lacks would leave the step without it, silently."""
    declared = sorted({(node.id, name) for node in spec.nodes for name in node.secrets})
    defined = defined_names(workspace.pk, {n for _, n in declared})
    return [SpecError(node, "secrets", f"secret {name!r} is not defined in this workspace; "
                      "add it first (Secrets, or POST /api/secrets/)")
            for node, name in declared if name not in defined]


def _missing_snapshots(workspace, spec: Spec, values: dict[str, Any]) -> list[SpecError]:
    """A step may run only code uploaded to its own workspace (POST /api/artifacts/)."""
    wanted = {node.id: snapshot_digest(resolve_params(node, values)) for node in spec.nodes}
    wanted = {node: digest for node, digest in wanted.items() if digest}
    found = set(Artifact.objects.filter(workspace=workspace, digest__in=wanted.values())
                .values_list("digest", flat=True)) if wanted else set()
    return [SpecError(node, "params.source",
                      f"source snapshot {digest} is not in this workspace; upload the folder "
                      "first (POST /api/artifacts/ or the SDK)")
            for node, digest in wanted.items() if digest not in found]


def _compute_targets(workspace, spec: Spec) -> dict[str, ComputeTarget]:
    names = {node.compute for node in spec.nodes}
    targets = {t.name: t for t in ComputeTarget.objects.filter(workspace=workspace, name__in=names)}
    errors = [
        SpecError(node.id, "compute", f"unknown compute target {node.compute!r} in this workspace")
        for node in spec.nodes if node.compute not in targets
    ]
    if errors:
        raise SpecInvalid(errors, "The pipeline names compute targets that do not exist.")
    return targets


class EndpointDisabled(Exception):
    """The endpoint is switched off; it starts no runs (409)."""


def invoke_endpoint(endpoint: Endpoint, *, parameters: dict[str, Any],
                    version: PipelineVersion | None = None, user=None,
                    token: ApiToken | None = None) -> Run:
    """Start a run of the endpoint's default version (or `version`), attributed to the caller.

    Raises EndpointDisabled, or SpecInvalid naming each bad parameter.
    """
    if not endpoint.enabled:
        raise EndpointDisabled(f"The endpoint {endpoint.name} is disabled; enable it to start "
                               "runs.")
    return submit_run(endpoint.pipeline, parameters=parameters,
                      version=version or endpoint.default_version, user=user, token=token,
                      trigger=Run.Trigger.ENDPOINT, endpoint=endpoint)


def fire_schedule(schedule_id: int) -> Run | None:
    """Start the schedule's run (beat calls this through the control task); None when the
    schedule is gone or paused, or its endpoint is disabled."""
    schedule = schedule_to_fire(schedule_id)
    if schedule is None:
        return None
    endpoint = schedule.endpoint
    return submit_run(endpoint.pipeline, parameters=schedule.parameters,
                      version=endpoint.default_version, user=schedule.created_by,
                      trigger=Run.Trigger.SCHEDULE, endpoint=endpoint, schedule=schedule)


def rerun(run: Run, *, from_failed: bool, user=None, token: ApiToken | None = None) -> Run:
    """Run the same spec and parameters again.

    From the failed steps: what succeeded (or was reused) in `run` is carried over as reused,
    the rest runs. Otherwise every step runs again, reuse switched off.
    """
    carried = {}
    if from_failed:
        for step in run.steps.filter(state__in=("succeeded", "reused")).select_related(
                "reused_from"):
            carried[step.node] = step.reused_from or step
    return submit_run(
        run.pipeline, parameters=run.parameters, version=run.version, user=user, token=token,
        trigger=Run.Trigger.RERUN, rerun_of=run, spec_document=run.spec,
        allow_reuse=from_failed, carried=carried,
    )


def plan_run(pipeline: Pipeline, *, parameters: dict[str, Any] | None = None,
             version: PipelineVersion | None = None) -> list[dict[str, Any]]:
    """Before a run: which steps would be reused and which would run, and why."""
    workspace = pipeline.workspace
    spec, values = _checked(workspace, version.spec if version else pipeline.spec, parameters)
    targets = _compute_targets(workspace, spec)
    registry = component_registry(workspace)
    parents = spec.parents()
    outputs: dict[str, dict[str, str]] = {}
    running: set[str] = set()
    plan = []
    for node_id in topological_order([n.id for n in spec.nodes], _links(spec)):
        node = spec.node(node_id)
        rerunning = [p for p in parents[node_id] if p in running]
        if rerunning:
            running.add(node_id)
            plan.append({"node": node_id, "action": "run", "reused_from": None,
                         "reason": f"runs after {', '.join(rerunning)}, which will run"})
            continue
        params = resolve_params(node, values)
        inputs = input_digests(spec, node_id, outputs)
        inputs.update(extra_inputs(workspace.pk, node.component, params))
        parts = node_parts(node, params, inputs, registry, targets[node.compute])
        fingerprint_ = fingerprint(parts)
        earlier = (reusable_steps(workspace.pk, [fingerprint_]).get(fingerprint_)
                   if node.allow_reuse else None)
        if earlier is not None:
            outputs[node_id] = earlier.outputs
            plan.append({"node": node_id, "action": "reuse", "reused_from": earlier.run_id,
                         "reason": f"identical to step {earlier.node} of run {earlier.run_id}"})
            continue
        running.add(node_id)
        reason = ("reuse is off for this node" if not node.allow_reuse else
                  "; ".join(explain_changes(previous_parts(pipeline.pk, [node_id]).get(node_id),
                                            parts)))
        plan.append({"node": node_id, "action": "run", "reused_from": None, "reason": reason})
    return plan


def _links(spec: Spec) -> list[tuple[str, str]]:
    return [(e.from_node, e.to_node) for e in spec.edges]


def cancel_run(run_id: int) -> Run:
    """Cancel what has not finished: pending and queued steps at once, running ones via
    their worker (told in the reply to its next report), or by the reconciler after a timeout."""
    with transaction.atomic():
        run = locked_run(run_id)
        if run.request_cancel():
            advance(run)
    run.refresh_from_db()
    return run
