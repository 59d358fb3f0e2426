"""The run engine's server side: submit, advance, dispatch, ingest step events, reconcile.

Every change of a run's or a step's state happens here, inside `transaction.atomic()` with the
run row locked first and then its steps (R10). What the pure `runner.transitions` decides is
applied; jobs leave for the broker and events for browsers only after commit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.compute.models import ComputeTarget, Worker
from pipelines_ui.data.models import Artifact, Datastore
from pipelines_ui.pipelines.models import Endpoint, Pipeline, PipelineVersion, Schedule
from pipelines_ui.pipelines.services import SpecInvalid, check_spec, component_registry
from pipelines_ui.registry.services import record_step_success, registry_inputs, start_problem
from pipelines_ui.runs.broadcast import broadcast
from pipelines_ui.runs.broker_restarts import broker_restarted
from pipelines_ui.runs.models import LogLine, MetricPoint, Run, RunTag, StepRun
from pipelines_ui.runs.waiting import lost_attempt_stops_at
from pipelines_ui.secrets.services import declared_values, defined_names
from runner import step_launch, transitions
from runner.components import ComponentDef
from runner.fingerprint import explain_changes, fingerprint, fingerprint_parts
from runner.graph import topological_order
from runner.messages import CONTRACT_VERSION, StepJob, parse_step_job, parse_step_report
from runner.spec import Spec, SpecError, check_run_parameters, resolve_params

log = logging.getLogger(__name__)


class StepTokenInvalid(Exception):
    """The report's token is not the one issued for that step attempt (401)."""


class StepTokenExpired(Exception):
    """The token's attempt succeeded: the token is spent (401, docs/reliability.md S5)."""


class AttemptStale(Exception):
    """The report is about an attempt that is no longer current (409: the worker stops)."""


# --- Submitting -----------------------------------------------------------------------------


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
    spec, values = _checked(workspace, document, parameters)
    targets = _compute_targets(workspace, spec)
    carried = carried or {}
    with transaction.atomic():
        run = Run.objects.create(
            workspace=workspace, pipeline=pipeline, version=version, spec=spec.to_dict(),
            parameters=values, trigger=trigger, triggered_by=user, token=token,
            endpoint=endpoint, schedule=schedule, rerun_of=rerun_of, note=note,
            allow_reuse=allow_reuse,
        )
        RunTag.objects.bulk_create([RunTag(run=run, name=tag) for tag in set(tags)])
        StepRun.objects.bulk_create([
            StepRun(run=run, node=node.id, component=node.component,
                    compute_target=targets[node.compute], allow_reuse=node.allow_reuse)
            for node in spec.nodes
        ])
        for step in run.steps.filter(node__in=carried):
            _reuse(step, carried[step.node])
        advance_run(run.pk)
    run.refresh_from_db()
    return run


def _checked(workspace, document: Any, parameters: dict[str, Any] | None
             ) -> tuple[Spec, dict[str, Any]]:
    spec = check_spec(workspace, document)
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
    wanted = {node.id: _snapshot_digest(resolve_params(node, values)) for node in spec.nodes}
    wanted = {node: digest for node, digest in wanted.items() if digest}
    found = set(Artifact.objects.filter(workspace=workspace, digest__in=wanted.values())
                .values_list("digest", flat=True)) if wanted else set()
    return [SpecError(node, "params.source",
                      f"source snapshot {digest} is not in this workspace; upload the folder "
                      "first (POST /api/artifacts/ or the SDK)")
            for node, digest in wanted.items() if digest not in found]


def _snapshot_digest(params: dict[str, Any]) -> str | None:
    """The source snapshot a step's code comes from, when it is not inline."""
    source = params.get("source")
    return source if "code" not in params and isinstance(source, str) else None


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
        inputs = _input_digests(spec, node_id, outputs)
        inputs.update(registry_inputs(workspace.pk, node.component, params))
        parts = _parts(node, params, inputs, registry, targets[node.compute])
        fingerprint_ = fingerprint(parts)
        earlier = (_reusable_steps(workspace.pk, [fingerprint_]).get(fingerprint_)
                   if node.allow_reuse else None)
        if earlier is not None:
            outputs[node_id] = earlier.outputs
            plan.append({"node": node_id, "action": "reuse", "reused_from": earlier.run_id,
                         "reason": f"identical to step {earlier.node} of run {earlier.run_id}"})
            continue
        running.add(node_id)
        reason = ("reuse is off for this node" if not node.allow_reuse else
                  "; ".join(explain_changes(_previous_parts(pipeline.pk, [node_id]).get(node_id),
                                            parts)))
        plan.append({"node": node_id, "action": "run", "reused_from": None, "reason": reason})
    return plan


def _links(spec: Spec) -> list[tuple[str, str]]:
    return [(e.from_node, e.to_node) for e in spec.edges]


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


def cancel_run(run_id: int) -> Run:
    """Cancel what has not finished: pending and queued steps at once, running ones via
    their worker (told in the reply to its next report), or by the reconciler after a timeout."""
    with transaction.atomic():
        run = _locked_run(run_id)
        if not run.is_finished and not run.canceling:
            run.canceling = True
            run.save(update_fields=["canceling"])
            _advance(run)
    run.refresh_from_db()
    return run


# --- Advancing a run -----------------------------------------------------------------------


@dataclass
class _Changes:
    """What a transaction changed, broadcast once it commits."""

    run_id: int
    events: list[dict[str, Any]] = field(default_factory=list)

    def step(self, step: StepRun) -> None:
        self.events.append(step_event(step))

    def publish_on_commit(self) -> None:
        if self.events:
            events = list(self.events)
            transaction.on_commit(lambda: broadcast(self.run_id, *events))
            self.events.clear()


def step_event(step: StepRun) -> dict[str, Any]:
    return {
        "type": "step", "node": step.node, "state": step.state, "attempt": step.attempt,
        "error": step.error, "reused_from": step.reused_from_id,
        "started_at": _iso(step.started_at), "finished_at": _iso(step.finished_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def advance_run(run_id: int) -> None:
    """Apply every transition that is due for the run (idempotent)."""
    with transaction.atomic():
        run = _locked_run(run_id)
        _advance(run)


def _advance(run: Run, *changed: StepRun) -> None:
    """With the run row locked: act on `next_actions` until nothing is left to do.

    Every step row is locked, but only the states are read; a step is loaded whole only when
    an action touches it (or the caller `changed` it and passes it), so an event costs little
    even in a run of hundreds of steps. The steps one round makes ready start together, in a
    few queries for the lot: a fan-out's root queues hundreds of children at once.

    The events of the `changed` steps go out first, and so before the run's final event: a
    client that trusts the order never sees a run end before its last step does.
    """
    frozen = _frozen(run)
    views = {
        node: transitions.StepView(state, attempt, cancel_at is not None)
        for node, state, attempt, cancel_at in StepRun.objects.select_for_update()
        .filter(run=run).values_list("node", "state", "attempt", "cancel_requested_at")
    }
    steps = _StepLoader(run)
    steps.update((step.node, step) for step in changed)
    changes = _Changes(run.pk)
    for step in changed:
        changes.step(step)
    for _ in range(len(views) * 3 + 3):  # each pass settles at least one step
        actions = transitions.next_actions(frozen.parents, frozen.policies, views,
                                           canceling=run.canceling)
        if not actions:
            break
        ready = [action.node for action in actions if isinstance(action, transitions.Ready)]
        steps.load([action.node for action in actions
                    if not isinstance(action, transitions.FinishRun)]
                   + [parent for node in ready for parent in frozen.parents[node]])
        _start_steps(run, frozen, [steps[node] for node in ready], steps)
        for action in actions:
            if isinstance(action, transitions.FinishRun):
                _finish_run(run, action.status, changes)
                continue
            step = steps[action.node]
            if isinstance(action, transitions.Skip):
                _end_step(step, "skipped", action.reason)
            elif isinstance(action, transitions.Cancel):
                _end_step(step, "canceled", "canceled")
            elif isinstance(action, transitions.RequestCancel):
                step.cancel_requested_at = timezone.now()
                step.save(update_fields=["cancel_requested_at"])
            views[step.node] = _view(step)
            changes.step(step)
    _mark_running(run, views, changes)
    changes.publish_on_commit()


class _StepLoader(dict):
    """node -> StepRun of one run, loaded on first use (its row is locked already)."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def load(self, nodes: Iterable[str]) -> None:
        """Load those of `nodes` not loaded yet, in one query."""
        missing = {node for node in nodes if node not in self}
        if missing:
            for step in StepRun.objects.select_related("compute_target").filter(
                    run=self.run, node__in=missing):
                self._keep(step)

    def __missing__(self, node: str) -> StepRun:
        return self._keep(
            StepRun.objects.select_related("compute_target").get(run=self.run, node=node))

    def _keep(self, step: StepRun) -> StepRun:
        step.run = self.run  # spares a query when its job is built
        self[step.node] = step
        return step


def _view(step: StepRun) -> transitions.StepView:
    return transitions.StepView(step.state, step.attempt, step.cancel_requested)


@dataclass(frozen=True)
class _Frozen:
    spec: Spec
    components: dict[str, ComponentDef]  # those the spec names; versions never change
    parents: dict[str, list[str]]  # what transitions.next_actions takes, made once
    policies: dict[str, transitions.NodePolicy]


_frozen_cache: dict[tuple[int, datetime], _Frozen] = {}


def _frozen(run: Run) -> _Frozen:
    """The run's spec and components, parsed once per process: every event of a run needs
    them and they never change. Keyed by creation time too, since ids can come back after a
    database is reset."""
    key = (run.pk, run.created_at)
    frozen = _frozen_cache.get(key)
    if frozen is None:
        registry = component_registry(run.workspace_id)
        spec = check_spec(run.workspace_id, run.spec, registry)
        frozen = _Frozen(
            spec, {node.component: registry[node.component] for node in spec.nodes},
            spec.parents(),
            {n.id: transitions.NodePolicy(n.retries, n.continue_on_failure) for n in spec.nodes})
        if len(_frozen_cache) > 1000:
            _frozen_cache.clear()
        _frozen_cache[key] = frozen
    return frozen


def run_spec(run: Run) -> Spec:
    return _frozen(run).spec


def _start_steps(run: Run, frozen: _Frozen, ready: list[StepRun], steps: _StepLoader) -> None:
    """Ready steps: each reuses an earlier identical step's outputs, or queues a new attempt.
    The queries are made for all of them at once; the jobs leave together after commit."""
    for step in ready:
        _fingerprint(run, frozen, step, steps)
    artifacts = _artifacts(run.workspace_id, (s.inputs for s in ready))
    _link_consumed(ready, artifacts)
    startable = []
    for step in ready:
        node = frozen.spec.node(step.node)
        problem = start_problem(run.workspace_id, node.component, step.params, step.inputs)
        if problem is not None:  # e.g. an unknown dataset: the step fails with that sentence
            step.save()
            _end_step(step, "failed", problem)
        else:
            startable.append(step)
    may_reuse = {step.node: step.fingerprint for step in startable  # node -> its fingerprint
                 if run.allow_reuse and frozen.spec.node(step.node).allow_reuse}
    reusable = _reusable_steps(run.workspace_id, list(may_reuse.values()), exclude_run=run.pk)
    changed = [node for node, fingerprint_ in may_reuse.items() if fingerprint_ not in reusable]
    previous = _previous_parts(run.pipeline_id, changed, exclude_run=run.pk)
    queued = []
    for step in startable:
        earlier = reusable.get(step.fingerprint) if step.node in may_reuse else None
        if earlier is not None:
            _reuse(step, earlier)
            continue
        step.reason = ("reuse is off for this run" if not run.allow_reuse else
                       "reuse is off for this node" if step.node not in may_reuse else
                       "; ".join(explain_changes(previous.get(step.node), step.fingerprint_parts)))
        _new_attempt(step, attempt=step.attempt + 1)
        queued.append(step)
    _send_on_commit(queued, artifacts)


def _fingerprint(run: Run, frozen: _Frozen, step: StepRun, steps: _StepLoader) -> None:
    """Resolve the step's parameters and inputs, and what decides its reuse."""
    spec = frozen.spec
    node = spec.node(step.node)
    step.params = resolve_params(node, run.parameters)
    step.inputs = _input_digests(spec, node.id, {
        parent: steps[parent].outputs for parent, _ in spec.inputs_of(node.id).values()})
    step.inputs.update(registry_inputs(run.workspace_id, node.component, step.params))
    step.fingerprint_parts = _parts(node, step.params, step.inputs, frozen.components,
                                    step.compute_target)
    step.fingerprint = fingerprint(step.fingerprint_parts)


def _artifacts(workspace_id: int, inputs: Iterable[dict[str, str]]) -> dict[str, Artifact]:
    """digest -> Artifact of the workspace, for every digest the `inputs` name."""
    digests = {digest for ports in inputs for digest in ports.values()}
    if not digests:
        return {}
    return {a.digest: a for a in Artifact.objects.filter(workspace=workspace_id,
                                                         digest__in=digests)}


def _link_consumed(steps: list[StepRun], artifacts: dict[str, Artifact]) -> None:
    """Record the artifacts the steps read (lineage); the steps are new, so nothing to unlink."""
    consumed = StepRun.consumed.through
    consumed.objects.bulk_create(
        [consumed(steprun_id=step.pk, artifact_id=artifacts[digest].pk)
         for step in steps for digest in set(step.inputs.values()) if digest in artifacts],
        ignore_conflicts=True)


def _reuse(step: StepRun, earlier: StepRun) -> None:
    now = timezone.now()
    step.state = "reused"
    step.outputs = earlier.outputs
    step.reused_from = earlier
    step.reason = f"reused the outputs of run {earlier.run_id} (step {earlier.node})"
    step.started_at = step.finished_at = now
    step.save()


def _input_digests(spec: Spec, node_id: str,
                   outputs: dict[str, dict[str, str]]) -> dict[str, str]:
    """The node's input port -> digest of the parent output that feeds it (where there is one)."""
    return {
        port: outputs[parent][parent_port]
        for port, (parent, parent_port) in spec.inputs_of(node_id).items()
        if parent_port in outputs.get(parent, {})
    }


def _parts(node, params: dict[str, Any], inputs: dict[str, str],
           registry: dict[str, ComponentDef], target: ComputeTarget | None) -> dict[str, Any]:
    """What decides reuse: code, parameters, inputs and environment (never position or order)."""
    environment = {
        "component": node.component,
        "python": (target.python if target else "") or "worker default",
        "env": dict(node.env),
        "secrets": sorted(node.secrets),
        # A node declaring more outputs must not reuse a step that produced fewer.
        "outputs": sorted(port.name for port in node.outputs),
    }
    return fingerprint_parts(code_digest=registry[node.component].code_digest, params=params,
                             inputs=inputs, environment=environment)


def _reusable_steps(workspace_id: int, fingerprints: list[str],
                    exclude_run: int | None = None) -> dict[str, StepRun]:
    """fingerprint -> the latest succeeded step of the workspace with that fingerprint whose
    outputs all still exist (of its 5 latest), for each of `fingerprints` that has one."""
    if not fingerprints:
        return {}
    candidates = list(_latest_of_each(
        StepRun.objects.filter(run__workspace=workspace_id, state="succeeded", allow_reuse=True)
        .exclude(run=exclude_run).only("run_id", "node", "outputs", "fingerprint"),
        "fingerprint", set(fingerprints), ("-finished_at", "-id"), count=5))
    existing = set(Artifact.objects.filter(
        workspace=workspace_id,
        digest__in={d for c in candidates for d in c.outputs.values()},
    ).values_list("digest", flat=True))
    found: dict[str, StepRun] = {}
    for candidate in candidates:  # the latest first, for each fingerprint
        if candidate.fingerprint not in found and existing.issuperset(candidate.outputs.values()):
            found[candidate.fingerprint] = candidate
    return found


def _previous_parts(pipeline_id: int, nodes: list[str],
                    exclude_run: int | None = None) -> dict[str, dict[str, Any]]:
    """node -> the fingerprint parts of its latest earlier step, to say what changed."""
    if not nodes:
        return {}
    latest = _latest_of_each(
        StepRun.objects.filter(run__pipeline=pipeline_id)
        .exclude(run=exclude_run).exclude(fingerprint=""),
        "node", set(nodes), ("-run__created_at", "-id"), count=1)
    return {node: parts for node, parts in latest.values_list("node", "fingerprint_parts")
            if parts}


def _latest_of_each(rows: QuerySet, field: str, values: set[str], order_by: tuple[str, ...],
                    count: int) -> QuerySet:
    """The first `count` of `rows` by `order_by` for each of the `values` of `field`, in rank
    order. For one value (a chain's case) a plain LIMIT does, which is cheaper to build."""
    rows = rows.filter(**{f"{field}__in": values})
    if len(values) == 1:
        return rows.order_by(*order_by)[:count]
    return (rows.annotate(rank=Window(RowNumber(), partition_by=F(field), order_by=order_by))
            .filter(rank__lte=count).order_by("rank"))


def _new_attempt(step: StepRun, attempt: int) -> None:
    """Queue attempt number `attempt` under a fresh id; the caller sends it on commit."""
    step.state = "queued"
    step.attempt = attempt
    step.attempt_id = uuid.uuid4().hex
    step.claim = ""
    step.queued_at = timezone.now()
    step.dispatched_at = None
    step.started_at = step.finished_at = step.last_heartbeat_at = None
    step.worker, step.pid, step.exit_code = "", None, None
    step.error = step.traceback = ""
    step.save()


def _end_step(step: StepRun, state: str, error: str) -> None:
    step.state = state
    step.error = error
    step.finished_at = timezone.now()
    step.save(update_fields=["state", "error", "finished_at"])


def _finish_run(run: Run, status: str, changes: _Changes) -> None:
    if run.is_finished:
        return
    run.status = status
    run.finished_at = timezone.now()
    run.started_at = run.started_at or run.finished_at
    run.save(update_fields=["status", "finished_at", "started_at"])
    changes.events.append(run_event(run))


def _mark_running(run: Run, views: dict[str, transitions.StepView], changes: _Changes) -> None:
    """A run is running once a step started or was reused; queued steps alone keep it queued."""
    if run.status == "queued" and any(v.state not in ("pending", "queued")
                                      for v in views.values()):
        run.status = "running"
        run.started_at = timezone.now()
        run.save(update_fields=["status", "started_at"])
        changes.events.append(run_event(run))


def run_event(run: Run) -> dict[str, Any]:
    return {"type": "run", "status": run.status, "canceling": run.canceling,
            "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at)}


# --- Dispatching ---------------------------------------------------------------------------


def step_token(step_run_id: int, attempt_id: str) -> str:
    """The attempt's credential: an HMAC of the server's key, valid for that attempt alone."""
    message = f"step-attempt:{step_run_id}:{attempt_id}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def dispatch(step_run_id: int, attempt_id: str) -> bool:
    """Send the attempt's StepJob to its target's queue. False (and nothing recorded) when the
    attempt is no longer queued or the broker is unreachable: the reconciler sends it later."""
    step = (StepRun.objects.select_related("run", "compute_target").defer("run__spec")
            .filter(pk=step_run_id, attempt_id=attempt_id, state="queued").first())
    return step is not None and send_jobs([step]) == 1


def _send_on_commit(steps: list[StepRun], artifacts: dict[str, Artifact] | None = None) -> None:
    """Send the jobs of the attempts just queued once the transaction that queued them commits
    (never before: a worker must find its attempt in the database)."""
    if steps:
        transaction.on_commit(partial(send_jobs, steps, artifacts))


def send_jobs(steps: list[StepRun], artifacts: dict[str, Artifact] | None = None) -> int:
    """Send the StepJobs of attempts just queued in one run, as the transaction that queued
    them left them; returns how many reached the broker. Should an attempt have ended
    meanwhile, its worker's claim is refused (R3). `artifacts` (digest -> Artifact) holds the
    inputs, where the caller has them already. Never raises: what was not sent stays queued
    and undispatched, and the reconciler sends it (R5)."""
    from pipelines_ui.celery import app

    try:
        workspace_id = steps[0].run.workspace_id
        if artifacts is None:
            artifacts = _artifacts(workspace_id, (step.inputs for step in steps))
        store_url = datastore_url(workspace_id)
    except Exception:
        log.warning("could not build the jobs of step runs %s", [s.pk for s in steps],
                    exc_info=True)
        return 0
    sent = []
    for step in steps:
        try:
            job = build_job(step, artifacts, store_url)
        except Exception:
            log.warning("could not build the job of step run %s", step.pk, exc_info=True)
            continue
        try:
            app.send_task("runner.run_step", args=[job], queue=step.compute_target.queue,
                          retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2,
                                                    "interval_step": 0.5, "interval_max": 1})
        except Exception:  # the broker is down: the rest would wait for it in vain
            log.warning("could not send step run %s to the broker", step.pk, exc_info=True)
            break
        sent.append(step.attempt_id)
    if sent:
        _mark_dispatched(steps[0].run_id, sent)
    return len(sent)


def _mark_dispatched(run_id: int, attempt_ids: list[str]) -> None:
    """Record that the attempts' jobs reached the broker. Several rows are updated under the
    run's lock, as every change of a run's steps is (R10): an event of the run locks them all
    meanwhile, in its own order. One row alone cannot deadlock."""
    rows = StepRun.objects.filter(attempt_id__in=attempt_ids, dispatched_at__isnull=True)
    try:
        if len(attempt_ids) == 1:
            rows.update(dispatched_at=timezone.now())
            return
        with transaction.atomic():
            _locked_run(run_id)
            rows.update(dispatched_at=timezone.now())
    except Exception:  # the jobs left: a second send of one is refused at its claim (R3)
        log.warning("could not record the dispatch of %s jobs of run %s", len(attempt_ids),
                    run_id, exc_info=True)


def build_job(step: StepRun, artifacts: dict[str, Artifact] | None = None,
              store_url: str | None = None) -> StepJob:
    run = step.run
    spec = run_spec(run)
    node = spec.node(step.node)
    component = _frozen(run).components[node.component]
    params = dict(step.params)
    code = _job_code(component, params, run.workspace_id)
    if artifacts is None:
        artifacts = _artifacts(run.workspace_id, [step.inputs])
    job: StepJob = {
        "version": CONTRACT_VERSION,
        "run_id": str(run.pk),
        "step_run_id": step.pk,
        "node": step.node,
        "attempt": step.attempt,
        "attempt_id": step.attempt_id,
        "token": step_token(step.pk, step.attempt_id),
        "server_url": settings.PIPELINES_SERVER_URL,
        "component": node.component,
        "command": list(component.command),
        "code": code,
        "params": params,
        "inputs": {port: {"digest": digest, "uri": artifacts[digest].uri,
                          "size": artifacts[digest].size}
                   for port, digest in step.inputs.items() if digest in artifacts},
        "outputs": [port.name for port in node.outputs],
        "env": dict(node.env),
        "secrets": declared_values(run.workspace_id, node.secrets),
        "python": step.compute_target.python or None,
        "datastore_url": datastore_url(run.workspace_id) if store_url is None else store_url,
        "timeout_s": node.timeout_s,
        "heartbeat_s": settings.STEP_HEARTBEAT_S,
        "lost_contact_s": lost_contact_s(),
    }
    return parse_step_job(job)


def lost_contact_s() -> float:
    """How long a worker may go without reaching the server before it kills its step: well
    inside the server's lost-after threshold, and at least two heartbeats."""
    return max(settings.STEP_HEARTBEAT_S * 2, settings.STEP_LOST_AFTER_S * 0.6)


def _job_code(component: ComponentDef, params: dict[str, Any],
              workspace_id: int) -> dict[str, Any]:
    """Inline code travels in the job; a source snapshot travels by reference (it was checked
    to be in the run's workspace at submit, and artifacts are never deleted under a run)."""
    if "code" in params:
        return {"inline": {params.get("script", "main.py"): params.pop("code")}}
    digest = _snapshot_digest(params)
    if digest is not None:
        artifact = Artifact.objects.get(workspace=workspace_id, digest=digest)
        return {"snapshot": {"digest": artifact.digest, "uri": artifact.uri,
                             "size": artifact.size}}
    return {"inline": dict(component.files)}


def datastore_url(workspace_id: int) -> str:
    store = Datastore.objects.filter(workspace=workspace_id, is_default=True).first()
    return store.url if store else settings.DATASTORE_URL


# --- Ingesting step events -----------------------------------------------------------------


def ingest_report(step_run_id: int, token: str, body: Any) -> dict[str, Any]:
    """Apply a worker's report (runner.messages): lines and points are stored once, state
    events go through the transition function. Returns the reply for the worker."""
    report = parse_step_report(body)
    attempt_id = report["attempt_id"]
    if not hmac.compare_digest(token, step_token(step_run_id, attempt_id)):
        raise StepTokenInvalid("the token is not valid for this step attempt")
    try:
        step = StepRun.objects.only("run_id", "node", "state", "attempt", "attempt_id",
                                    "cancel_requested_at").get(pk=step_run_id)
    except StepRun.DoesNotExist:
        step = None
    if step is None or step.attempt_id != attempt_id:
        raise AttemptStale("this attempt is no longer current")
    final = [event["type"] in ("finished", "failed") for event in report["events"]]
    ends = any(final)
    if step.state == "succeeded" and not all(final):
        # Only a replay of the final event, answered as a duplicate, gets past a spent token.
        raise StepTokenExpired("this step attempt has finished; its token has expired")
    if step.is_terminal and not ends:
        # The server ended this attempt (lost, canceled): the worker must stop its step (R3).
        # A replayed final report still goes through, to be answered as a duplicate.
        raise AttemptStale(f"step {step.node} is already {step.state}")
    cancel = step.cancel_requested
    stored: list[dict[str, Any]] = []  # broadcast together, before any later state change
    for event in report["events"]:
        kind = event["type"]
        if kind == "log":
            stored.append(_store_lines(step, event))
        elif kind == "metric":
            stored.append(_store_points(step, event))
        elif kind != "heartbeat":
            broadcast(step.run_id, *stored)
            stored.clear()
            cancel = _apply_state_event(step, attempt_id, event)
    broadcast(step.run_id, *stored)
    if ends:
        return {"ok": True, "cancel": False}  # nothing left to cancel or to keep alive
    if not any(event["type"] == "started" for event in report["events"]):
        StepRun.objects.filter(pk=step.pk, attempt_id=attempt_id, state="running").update(
            last_heartbeat_at=timezone.now())
    # As read when the report came in; a cancel asked for since is told on the next report.
    return {"ok": True, "cancel": cancel}


def _from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _store_lines(step: StepRun, event: dict[str, Any]) -> dict[str, Any]:
    """Store a batch of lines; returns the event that tells browsers."""
    first = event["first"]
    for line in event["lines"]:
        # A step may print any byte; PostgreSQL text refuses NUL (a 500, then a retry loop).
        line["text"] = line["text"].replace("\x00", "\ufffd")
    LogLine.objects.bulk_create(
        [LogLine(step_run=step, attempt=step.attempt, index=first + i, stream=line["stream"],
                 text=line["text"], time=_from_unix(line["time"]))
         for i, line in enumerate(event["lines"])],
        ignore_conflicts=True,  # a replayed batch is a no-op (R8)
    )
    return {"type": "log", "node": step.node, "attempt": step.attempt, "first": first,
            "lines": event["lines"]}


def _store_points(step: StepRun, event: dict[str, Any]) -> dict[str, Any]:
    """Store a batch of metric points; returns the event that tells browsers."""
    first = event["first"]
    MetricPoint.objects.bulk_create(
        [MetricPoint(run_id=step.run_id, step_run=step, attempt=step.attempt, index=first + i,
                     key=p["key"], step=p["step"], value=p["value"], time=_from_unix(p["time"]))
         for i, p in enumerate(event["points"])],
        ignore_conflicts=True,
    )
    return {"type": "metric", "node": step.node, "attempt": step.attempt, "first": first,
            "points": event["points"]}


def _locked_run(run_id: int) -> Run:
    """The run row, locked; without its spec, which `run_spec` parses once per process (a
    spec of hundreds of nodes would otherwise be decoded on every event)."""
    return Run.objects.select_for_update().defer("spec").get(pk=run_id)


def _lock_step(step_run_id: int, run_id: int | None = None) -> tuple[Run, StepRun]:
    """Lock the step's run row, then the step row: always in that order (R10)."""
    if run_id is None:
        run_id = StepRun.objects.values_list("run_id", flat=True).get(pk=step_run_id)
    run = _locked_run(run_id)
    return run, StepRun.objects.select_for_update().get(pk=step_run_id)


def _apply_state_event(reported: StepRun, attempt_id: str, event: dict[str, Any]) -> bool:
    """Apply a started, finished or failed event; returns whether the step is asked to stop."""
    with transaction.atomic():
        run, step = _lock_step(reported.pk, reported.run_id)
        if step.attempt_id != attempt_id:
            raise AttemptStale("this attempt is no longer current")
        if event["type"] == "started" and step.state == "running" and step.claim == event["claim"]:
            return step.cancel_requested  # the same delivery's claim, retried: already applied
        policy = _policy(run, step.node)
        outcome = transitions.apply_step_event(_view(step), _transition_event(step, event), policy)
        if outcome.effect == "stale":
            raise AttemptStale(f"step {step.node} is {step.state}; attempt {step.attempt} "
                               "cannot report this")
        if outcome.effect == "duplicate":
            return step.cancel_requested
        _record_event(run, step, event, outcome)
        if event["type"] == "started":  # a claim never makes another step ready
            changes = _Changes(run.pk, [step_event(step)])
            _mark_running(run, {step.node: _view(step)}, changes)
            changes.publish_on_commit()
        else:
            _advance(run, step)
        return step.cancel_requested


def _policy(run: Run, node_id: str) -> transitions.NodePolicy:
    return _frozen(run).policies[node_id]


def _transition_event(step: StepRun, event: dict[str, Any]):
    kind = event["type"]
    if kind == "started":
        return transitions.Claimed(step.attempt)
    if kind == "finished":
        return transitions.Succeeded(step.attempt)
    return transitions.Failed(step.attempt, retryable=event["reason"] != "canceled")


def _record_event(run: Run, step: StepRun, event: dict[str, Any],
                  outcome: transitions.StepOutcome) -> None:
    now = timezone.now()
    kind = event["type"]
    if kind == "started":
        step.state = "running"
        step.claim = event["claim"]
        step.worker = event["worker"]
        step.pid = event["pid"]
        step.started_at = step.last_heartbeat_at = now
        step.save(update_fields=["state", "claim", "worker", "pid", "started_at",
                                 "last_heartbeat_at"])
        return
    if kind == "finished":
        step.outputs = _record_outputs(run, step, event["outputs"])
        step.exit_code = 0
        step.state, step.finished_at = outcome.step.state, now
        step.save(update_fields=["outputs", "exit_code", "state", "finished_at"])
        record_step_success(run, step)  # registers or deploys, for the registry's steps
        return
    step.exit_code = event.get("exit_code")
    step.error = event.get("message") or event["reason"]
    step.traceback = event.get("traceback", "")
    step.finished_at = now
    if outcome.effect == "retry":
        _archive_attempt(step)
        _new_attempt(step, attempt=outcome.step.attempt)
        _send_on_commit([step])
    else:
        step.state = outcome.step.state
        step.save(update_fields=["exit_code", "error", "traceback", "finished_at", "state"])


def _record_outputs(run: Run, step: StepRun, outputs: dict[str, Any]) -> dict[str, str]:
    Artifact.objects.bulk_create(
        [Artifact(workspace_id=run.workspace_id, digest=ref["digest"], uri=ref["uri"],
                  size=ref["size"], produced_by=step) for ref in outputs.values()],
        ignore_conflicts=True,  # content-addressed: the same tree may exist already
    )
    return {port: ref["digest"] for port, ref in outputs.items()}


def _archive_attempt(step: StepRun) -> None:
    step.attempts = [*step.attempts, {
        "attempt": step.attempt, "error": step.error, "exit_code": step.exit_code,
        "worker": step.worker, "started_at": _iso(step.started_at),
        "finished_at": _iso(step.finished_at),
    }]
    write_system_line(step, f"attempt {step.attempt} failed: {step.error}; retrying")


def write_system_line(step: StepRun, text: str) -> None:
    """A line from the server itself in the step's log (lost worker, retry, cancel)."""
    taken = LogLine.objects.filter(step_run=step, attempt=step.attempt,
                                   index__gte=LogLine.SYSTEM_INDEX_BASE).count()
    LogLine.objects.create(step_run=step, attempt=step.attempt, stream="system", text=text,
                           index=LogLine.SYSTEM_INDEX_BASE + taken, time=timezone.now())


# --- Reconciling ---------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    lost: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    cancel_forced: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.lost or self.sent or self.resent or self.waiting or self.cancel_forced)


def reconcile_once(now: datetime | None = None) -> ReconcileReport:
    """One pass over what events may have missed (idempotent; beat calls it, tests too)."""
    now = now or timezone.now()
    report = ReconcileReport()
    _find_lost_attempts(now, report)
    _resend_after_broker_restart(report)
    _send_undispatched(now, report)
    _resend_untaken(now, report)
    _force_cancel(now, report)
    return report


def _find_lost_attempts(now: datetime, report: ReconcileReport) -> None:
    cutoff = now - timedelta(seconds=settings.STEP_LOST_AFTER_S)
    silent = StepRun.objects.filter(state="running").filter(
        Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at__isnull=True, started_at__lt=cutoff)
    ).values_list("pk", "attempt_id")
    for step_run_id, attempt_id in silent:
        reason = f"worker lost: no heartbeat for {settings.STEP_LOST_AFTER_S} s"
        if mark_attempt_lost(step_run_id, attempt_id, reason):
            report.lost.append(step_run_id)


def mark_attempt_lost(step_run_id: int, attempt_id: str, reason: str) -> bool:
    """Retry (if the policy allows) or fail a running attempt whose worker went silent."""
    with transaction.atomic():
        run, step = _lock_step(step_run_id)
        if step.attempt_id != attempt_id or step.state != "running":
            return False  # it reported, or someone else already handled it
        outcome = transitions.apply_step_event(
            _view(step), transitions.Lost(step.attempt), _policy(run, step.node))
        if outcome.effect not in ("applied", "retry"):
            return False
        write_system_line(step, f"attempt {step.attempt} lost: {reason}")
        step.error = reason
        step.finished_at = timezone.now()
        if outcome.effect == "retry":
            stops_at = _lost_attempt_stops_at(step)
            gone = stops_at <= step.finished_at
            _archive_attempt(step)
            step.attempts[-1]["stops_at"] = stops_at.isoformat()
            _new_attempt(step, attempt=outcome.step.attempt)
            if gone:  # else the reconciler sends it once the lost attempt is gone (R16)
                _send_on_commit([step])
        else:
            step.state = outcome.step.state
            step.save()
        _advance(run, step)
    return True


def _lost_attempt_stops_at(step: StepRun) -> datetime:
    """When a lost attempt's processes are gone for sure: its worker's lease on contact ends
    at most lost_contact_s after the last report the server took, and the step's supervisor
    has ended the process group STOPPED_WITHIN_S after that, even if the worker is frozen
    (runner.step_launch). Its retry is not sent before (R16)."""
    last_contact = step.last_heartbeat_at or step.started_at or step.finished_at
    return last_contact + timedelta(seconds=lost_contact_s() + step_launch.STOPPED_WITHIN_S)


def _send_undispatched(now: datetime, report: ReconcileReport) -> None:
    """Queued attempts whose job never reached the broker (it was down at the time), and
    retries whose lost attempt is now gone for sure (R16)."""
    stale = now - timedelta(seconds=2)
    for step in StepRun.objects.filter(
        state="queued", dispatched_at__isnull=True, queued_at__lt=stale
    ).only("pk", "state", "attempt_id", "attempts", "dispatched_at"):
        stops_at = lost_attempt_stops_at(step)
        if stops_at is not None and stops_at > now:
            continue
        if dispatch(step.pk, step.attempt_id):
            report.sent.append(step.pk)


def _resend_after_broker_restart(report: ReconcileReport) -> None:
    """A broker that restarted without its data lost every job it held: send the queued
    attempts again now, not STEP_QUEUED_TIMEOUT_S after their dispatch (R17)."""
    if not broker_restarted(settings.CELERY_BROKER_URL):
        return
    for step_run_id, attempt_id in StepRun.objects.filter(
        state="queued", dispatched_at__isnull=False
    ).values_list("pk", "attempt_id"):
        if _renew_attempt_id(step_run_id, attempt_id, "the broker restarted and may have lost "
                             "this step's job; sending it again"):
            report.resent.append(step_run_id)


def _resend_untaken(now: datetime, report: ReconcileReport) -> None:
    """Queued attempts that no worker claimed within Q: the broker may have lost the message.

    The attempt provably never started, so it is sent again under a new id without counting
    against the retry budget (R11); with no worker of the target online it waits, flagged.
    """
    cutoff = now - timedelta(seconds=settings.STEP_QUEUED_TIMEOUT_S)
    online_since = now - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    untaken = StepRun.objects.filter(state="queued", dispatched_at__lt=cutoff)
    for step in untaken.select_related("compute_target"):
        if not Worker.objects.filter(target=step.compute_target, stopped=False,
                                     last_seen_at__gte=online_since).exists():
            message = f"waiting: no worker of compute target {step.compute_target} is online"
            StepRun.objects.filter(pk=step.pk, state="queued").update(error=message)
            report.waiting.append(step.pk)
            continue
        if _renew_attempt_id(step.pk, step.attempt_id,
                             "no worker took this step in time; sending it again"):
            report.resent.append(step.pk)


def _renew_attempt_id(step_run_id: int, attempt_id: str, why: str) -> bool:
    with transaction.atomic():
        _, step = _lock_step(step_run_id)
        if step.state != "queued" or step.attempt_id != attempt_id:
            return False
        write_system_line(step, why)
        _new_attempt(step, attempt=step.attempt)
        _send_on_commit([step])
    return True


def _force_cancel(now: datetime, report: ReconcileReport) -> None:
    """Steps asked to cancel whose worker never answered (it may be dead) end canceled (R12)."""
    cutoff = now - timedelta(seconds=settings.STEP_CANCEL_TIMEOUT_S)
    for step_run_id in StepRun.objects.filter(
        state__in=("queued", "running"), cancel_requested_at__lt=cutoff
    ).values_list("pk", flat=True):
        with transaction.atomic():
            run, step = _lock_step(step_run_id)
            if step.state not in ("queued", "running"):
                continue
            write_system_line(step, "canceled: the worker did not confirm in time")
            _end_step(step, "canceled", "canceled (the worker did not confirm in time)")
            _advance(run, step)
        report.cancel_forced.append(step_run_id)
