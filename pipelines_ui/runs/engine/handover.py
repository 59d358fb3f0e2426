"""Handing the next step to the worker slot whose step just ended: no broker, no claim.

A worker's final report of an attempt may carry `hand_over` (runner.messages): its slot is
free, and here is a claim of its own. When the end makes a step of the same run ready on the
same compute target, that step's new attempt is claimed for the slot in the same transaction
(through `runner.transitions`, as a delivery's claim is) and its job is the reply; the worker
runs it at once. A chain of steps then costs one request a step instead of a broker round trip,
a claim and a report.

The claim holds whether or not the reply arrives: should it be lost, the attempt is running on
a worker that never heard of it, sends no heartbeat, and is found lost and retried like any
attempt whose worker died (docs/reliability.md R4, R16). Only steps queued by this very report
are handed over; the rest leave through the broker as before, so a slot never takes more than
the one step it has room for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines_ui.data.models import Artifact
from pipelines_ui.runs.engine.dispatch import build_job
from pipelines_ui.runs.engine.frozen_spec import node_policy
from pipelines_ui.runs.models import Run, StepRun
from runner import transitions
from runner.messages import StepJob


@dataclass
class HandOver:
    """A free worker slot that asked for the next ready step, and what it was handed."""

    compute_target_id: int | None
    claim: str
    worker: str
    pid: int
    job: StepJob | None = None

    @classmethod
    def asked_by(cls, step: StepRun, events: list[dict[str, Any]]) -> HandOver | None:
        """The slot's request, if the report's final event carries one."""
        for event in events:
            asked = event.get("hand_over") if event["type"] in ("finished", "failed") else None
            if asked:
                return cls(step.compute_target_id, asked["claim"], asked["worker"], asked["pid"])
        return None

    def take(self, run: Run, queued: list[StepRun],
             artifacts: dict[str, Artifact]) -> list[StepRun]:
        """Claim the first of the steps just `queued` that runs on the slot's target; returns
        those left for the broker."""
        if self.job is not None:
            return queued
        for index, step in enumerate(queued):
            if step.compute_target_id == self.compute_target_id and self._claim(run, step):
                self.job = build_job(step, artifacts)
                return queued[:index] + queued[index + 1:]
        return queued

    def _claim(self, run: Run, step: StepRun) -> bool:
        view = transitions.StepView(step.state, step.attempt, step.cancel_requested)
        outcome = transitions.apply_step_event(view, transitions.Claimed(step.attempt),
                                               node_policy(run, step.node))
        if outcome.effect != "applied":
            return False
        step.claim_attempt(self.claim, self.worker, self.pid)
        return True

    def reply(self) -> dict[str, Any]:
        """What the report's answer adds: the job handed over, if any."""
        return {"next": self.job} if self.job is not None else {}
