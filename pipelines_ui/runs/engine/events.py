"""What browsers are told about a run's changes: one event per changed step or run, sent
together once the transaction that made the changes commits (docs/reliability.md R9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from pipelines_ui.runs.broadcast import broadcast
from pipelines_ui.runs.models import Run, StepRun
from pipelines_ui.runs.serializers import run_data, step_data


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
    """The step as the API shows it (runs/serializers.py), so the page just replaces its own."""
    return {"type": "step", **step_data(step)}


def run_event(run: Run) -> dict[str, Any]:
    """The run as the API lists it (runs/serializers.py)."""
    return {"type": "run", **run_data(run)}
