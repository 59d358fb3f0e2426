"""Advancing a run: apply what `runner.transitions` says is due, and start the ready steps.

Every change of a run's or a step's state happens inside `transaction.atomic()` with the run
row locked first and then its steps (R10, `locks`). What the pure `runner.transitions`
decides is applied; jobs leave for the broker and events for browsers only after commit.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from pipelines_ui.runs.engine.component_hooks import start_problem
from pipelines_ui.runs.engine.dispatch import input_artifacts, send_on_commit
from pipelines_ui.runs.engine.events import Changes
from pipelines_ui.runs.engine.frozen_spec import FrozenSpec, frozen_spec
from pipelines_ui.runs.engine.locks import locked_run
from pipelines_ui.runs.engine.reuse import fingerprint_step, previous_parts, reusable_steps
from pipelines_ui.runs.models import Run, StepRun
from runner import transitions
from runner.fingerprint import explain_changes


def advance_run(run_id: int) -> None:
    """Apply every transition that is due for the run (idempotent)."""
    with transaction.atomic():
        advance(locked_run(run_id))


def advance(run: Run, *changed: StepRun) -> None:
    """With the run row locked: act on `next_actions` until nothing is left to do.

    Every step row is locked, but only the states are read; a step is loaded whole only when
    an action touches it (or the caller `changed` it and passes it), so an event costs little
    even in a run of hundreds of steps. The steps one round makes ready start together, in a
    few queries for the lot: a fan-out's root queues hundreds of children at once.

    The events of the `changed` steps go out first, and so before the run's final event: a
    client that trusts the order never sees a run end before its last step does.
    """
    frozen = frozen_spec(run)
    views = {
        node: transitions.StepView(state, attempt, cancel_at is not None)
        for node, state, attempt, cancel_at in StepRun.objects.select_for_update()
        .filter(run=run).values_list("node", "state", "attempt", "cancel_requested_at")
    }
    steps = StepLoader(run)
    steps.update((step.node, step) for step in changed)
    changes = Changes(run.pk)
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
            _apply(run, action, steps, views, changes)
    mark_running(run, views, changes)
    changes.publish_on_commit()


def _apply(run: Run, action: transitions.Action, steps: StepLoader,
           views: dict[str, transitions.StepView], changes: Changes) -> None:
    """Apply one action of `next_actions` (a Ready step was started already)."""
    if isinstance(action, transitions.FinishRun):
        if run.finish(action.status):
            changes.run(run)
        return
    step = steps[action.node]
    if isinstance(action, transitions.Skip):
        step.end("skipped", action.reason)
    elif isinstance(action, transitions.Cancel):
        step.end("canceled", "canceled")
    elif isinstance(action, transitions.RequestCancel):
        step.request_cancel()
    views[step.node] = step_view(step)
    changes.step(step)


class StepLoader(dict):
    """node -> StepRun of one run, loaded on first use (its row is locked already)."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def load(self, nodes: Iterable[str]) -> None:
        """Load those of `nodes` not loaded yet, in two queries (with their targets' workers,
        which a queued step's event reads for its `waiting`)."""
        missing = {node for node in nodes if node not in self}
        if missing:
            for step in StepRun.objects.select_related("compute_target").prefetch_related(
                    "compute_target__workers").filter(run=self.run, node__in=missing):
                self._keep(step)

    def __missing__(self, node: str) -> StepRun:
        return self._keep(
            StepRun.objects.select_related("compute_target").get(run=self.run, node=node))

    def _keep(self, step: StepRun) -> StepRun:
        step.run = self.run  # spares a query when its job is built
        self[step.node] = step
        return step


def step_view(step: StepRun) -> transitions.StepView:
    return transitions.StepView(step.state, step.attempt, step.cancel_requested)


def _start_steps(run: Run, frozen: FrozenSpec, ready: list[StepRun], steps: StepLoader) -> None:
    """Ready steps: each reuses an earlier identical step's outputs, or queues a new attempt.
    The queries are made for all of them at once; the jobs leave together after commit."""
    for step in ready:
        fingerprint_step(run, frozen, step, steps)
    artifacts = input_artifacts(run.workspace_id, (s.inputs for s in ready))
    _link_consumed(ready, artifacts)
    startable = [step for step in ready if _may_start(run, frozen, step)]
    may_reuse = {step.node: step.fingerprint for step in startable  # node -> its fingerprint
                 if run.allow_reuse and frozen.spec.node(step.node).allow_reuse}
    reusable = reusable_steps(run.workspace_id, list(may_reuse.values()), exclude_run=run.pk)
    changed = [node for node, fingerprint_ in may_reuse.items() if fingerprint_ not in reusable]
    previous = previous_parts(run.pipeline_id, changed, exclude_run=run.pk)
    queued = []
    for step in startable:
        earlier = reusable.get(step.fingerprint) if step.node in may_reuse else None
        if earlier is not None:
            step.reuse_from(earlier)
            continue
        step.reason = ("reuse is off for this run" if not run.allow_reuse else
                       "reuse is off for this node" if step.node not in may_reuse else
                       "; ".join(explain_changes(previous.get(step.node), step.fingerprint_parts)))
        step.queue_attempt(step.attempt + 1)
        queued.append(step)
    send_on_commit(queued, artifacts)


def _may_start(run: Run, frozen: FrozenSpec, step: StepRun) -> bool:
    """False, with the step failed, when it cannot start (e.g. an unknown dataset)."""
    node = frozen.spec.node(step.node)
    problem = start_problem(run.workspace_id, node.component, step.params, step.inputs)
    if problem is None:
        return True
    step.save()
    step.end("failed", problem)
    return False


def _link_consumed(steps: list[StepRun], artifacts: dict) -> None:
    """Record the artifacts the steps read (lineage); the steps are new, so nothing to unlink."""
    consumed = StepRun.consumed.through
    consumed.objects.bulk_create(
        [consumed(steprun_id=step.pk, artifact_id=artifacts[digest].pk)
         for step in steps for digest in set(step.inputs.values()) if digest in artifacts],
        ignore_conflicts=True)


def mark_running(run: Run, views: dict[str, transitions.StepView], changes: Changes) -> None:
    """A run is running once a step started or was reused; queued steps alone keep it queued."""
    if run.status == "queued" and any(v.state not in ("pending", "queued")
                                      for v in views.values()):
        run.start()
        changes.run(run)
