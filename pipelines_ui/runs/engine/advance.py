"""Advancing a run: apply what `runner.transitions` says is due, and start the ready steps.

Every change of a run's or a step's state happens inside `transaction.atomic()` with the run
row locked first and then its steps (R10, `locks`). What the pure `runner.transitions`
decides is applied; jobs leave for the broker and events for browsers only after commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from pipelines_ui.data.models import Artifact
from pipelines_ui.runs.engine.component_hooks import start_problem
from pipelines_ui.runs.engine.dispatch import send_on_commit
from pipelines_ui.runs.engine.events import Changes
from pipelines_ui.runs.engine.frozen_spec import FrozenSpec, frozen_spec
from pipelines_ui.runs.engine.handover import HandOver
from pipelines_ui.runs.engine.locks import locked_run
from pipelines_ui.runs.engine.reuse import EarlierSteps, fingerprint_step, previous_parts
from pipelines_ui.runs.models import Run, StepRun
from pipelines_ui.secrets.services import unreadable_problem
from runner import transitions
from runner.fingerprint import explain_changes


def advance_run(run_id: int, *, starting: bool = False) -> None:
    """Apply every transition that is due for the run (idempotent)."""
    with transaction.atomic():
        advance(locked_run(run_id), starting=starting)


def advance(run: Run, *changed: StepRun, hand_over: HandOver | None = None,
            starting: bool = False) -> None:
    """With the run row locked: act on `next_actions` until nothing is left to do.

    Every step row is locked, but only the states are read; a step is loaded whole only when
    an action touches it (or the caller `changed` it and passes it), so an event costs little
    even in a run of hundreds of steps. The steps one round makes ready start together, in a
    few queries for the lot: a fan-out's root queues hundreds of children at once.

    The events of the `changed` steps go out first, and so before the run's final event: a
    client that trusts the order never sees a run end before its last step does. A step made
    ready may be handed to the worker slot that asked for one (`hand_over`) instead of sent.
    A run `starting` reads all its steps, and its pipeline's reusable ones, at once: a rerun
    reuses step after step down a chain in this one call.
    """
    frozen = frozen_spec(run)
    views = {
        node: transitions.StepView(state, attempt, cancel_at is not None)
        for node, state, attempt, cancel_at in StepRun.objects.select_for_update()
        .filter(run=run).values_list("node", "state", "attempt", "cancel_requested_at")
    }
    steps = StepLoader(run)
    steps.update((step.node, step) for step in changed)
    if starting:
        steps.load(views)
    start = _Start(run, frozen, steps, EarlierSteps(run, preload=starting), hand_over)
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
        start.steps_ready([steps[node] for node in ready])
        for action in actions:
            _apply(run, action, steps, views, changes)
        if run.is_finished:  # FinishRun came, and would come again on every further pass
            break
    start.save()
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


@dataclass
class _Start:
    """Starting the steps that become ready during one advance of a run."""

    run: Run
    frozen: FrozenSpec
    steps: StepLoader
    earlier: EarlierSteps
    hand_over: HandOver | None
    # Written once at the end, in two queries, however many rounds reused steps down a chain.
    reused: list[StepRun] = field(default_factory=list)
    consumed: list[tuple[StepRun, Artifact]] = field(default_factory=list)

    def steps_ready(self, ready: list[StepRun]) -> None:
        """Each ready step reuses an earlier identical step's outputs, or queues a new
        attempt. The queries are made for all of them at once; the jobs leave together after
        commit, but for one handed over to the worker slot that asked for it."""
        if not ready:
            return
        run, frozen = self.run, self.frozen
        for step in ready:
            fingerprint_step(run, frozen, step, self.steps)
        artifacts = self.earlier.inputs(ready)
        self.consumed += [(step, artifacts[digest]) for step in ready
                          for digest in set(step.inputs.values()) if digest in artifacts]
        startable = [step for step in ready if _may_start(run, frozen, step)]
        may_reuse = {step.node: step.fingerprint for step in startable  # node -> fingerprint
                     if run.allow_reuse and frozen.spec.node(step.node).allow_reuse}
        reusable = self.earlier.find(list(may_reuse.values()))
        changed = [node for node, print_ in may_reuse.items() if print_ not in reusable]
        previous = previous_parts(run.pipeline_id, changed, exclude_run=run.pk)
        queued = []
        for step in startable:
            earlier = reusable.get(step.fingerprint) if step.node in may_reuse else None
            if earlier is not None:
                step.reuse_from(earlier, save=False)
                self.reused.append(step)
                continue
            step.reason = _why_it_runs(run, step, step.node in may_reuse, previous)
            step.queue_attempt(step.attempt + 1)
            queued.append(step)
        if self.hand_over is not None:
            queued = self.hand_over.take(run, queued, artifacts)
        send_on_commit(queued, artifacts)


    def save(self) -> None:
        """Write what the rounds left unsaved: the reused steps, and the artifacts each ready
        step read (lineage; the steps are new, so nothing to unlink)."""
        StepRun.save_each(self.reused, StepRun.REUSE_FIELDS)
        consumed = StepRun.consumed.through
        consumed.objects.bulk_create(
            [consumed(steprun_id=step.pk, artifact_id=artifact.pk)
             for step, artifact in self.consumed], ignore_conflicts=True)


def _why_it_runs(run: Run, step: StepRun, may_reuse: bool,
                 previous: dict[str, dict[str, Any]]) -> str:
    if not run.allow_reuse:
        return "reuse is off for this run"
    if not may_reuse:
        return "reuse is off for this node"
    return "; ".join(explain_changes(previous.get(step.node), step.fingerprint_parts))


def _may_start(run: Run, frozen: FrozenSpec, step: StepRun) -> bool:
    """False, with the step failed, when it cannot start (e.g. an unknown dataset, or a
    declared secret that none of the server's keys decrypts)."""
    node = frozen.spec.node(step.node)
    problem = (start_problem(run.workspace_id, node.component, step.params, step.inputs)
               or unreadable_problem(run.workspace_id, node.secrets))
    if problem is None:
        return True
    step.save()
    step.end("failed", problem)
    return False


def mark_running(run: Run, views: dict[str, transitions.StepView], changes: Changes) -> None:
    """A run is running once a step started or was reused; queued steps alone keep it queued."""
    if run.status == "queued" and any(v.state not in ("pending", "queued")
                                      for v in views.values()):
        run.start()
        changes.run(run)
