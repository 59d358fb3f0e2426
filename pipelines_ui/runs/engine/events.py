"""What browsers are told about a run's changes: one event per changed step or run, sent
together once the transaction that made the changes commits (docs/reliability.md R9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction

from pipelines_ui.runs.broadcast import broadcast
from pipelines_ui.runs.models import Run, StepRun


@dataclass
class Changes:
    """What a transaction changed, broadcast once it commits."""

    run_id: int
    events: list[dict[str, Any]] = field(default_factory=list)

    def step(self, step: StepRun) -> None:
        self.events.append(step_event(step))

    def run(self, run: Run) -> None:
        self.events.append(run_event(run))

    def publish_on_commit(self) -> None:
        if self.events:
            events = list(self.events)
            transaction.on_commit(lambda: broadcast(self.run_id, *events))
            self.events.clear()


def step_event(step: StepRun) -> dict[str, Any]:
    return {
        "type": "step", "node": step.node, "state": step.state, "attempt": step.attempt,
        "error": step.error, "reused_from": step.reused_from_id,
        "started_at": iso(step.started_at), "finished_at": iso(step.finished_at),
    }


def run_event(run: Run) -> dict[str, Any]:
    return {"type": "run", "status": run.status, "canceling": run.canceling,
            "started_at": iso(run.started_at), "finished_at": iso(run.finished_at)}


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
