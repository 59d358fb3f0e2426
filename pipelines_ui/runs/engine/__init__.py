"""The run engine's server side, one module per phase:

- `submit`: start a run (for a caller, an endpoint, a schedule, a rerun), plan one, cancel one;
- `advance`: apply what `runner.transitions` says is due, start the ready steps;
- `reuse`: fingerprints, and which earlier step a ready step may reuse;
- `dispatch`: send each queued attempt's job to its target's queue, with its token;
- `ingest`: apply what workers report (lines, points, state events);
- `reconcile`: one pass over what events may have missed;

and what they share: `locks` (the run row, then its steps: R10), `frozen_spec` (a run's
parsed spec, once per process), `events` (what browsers are told, after commit).

Here: the entry points the rest of the server calls.
"""

from pipelines_ui.runs.engine.dispatch import step_token
from pipelines_ui.runs.engine.ingest import (
    AttemptStale,
    StepTokenExpired,
    StepTokenInvalid,
    ingest_report,
)
from pipelines_ui.runs.engine.reconcile import reconcile_once
from pipelines_ui.runs.engine.submit import (
    EndpointDisabled,
    cancel_run,
    fire_schedule,
    invoke_endpoint,
    plan_run,
    rerun,
    submit_run,
)

__all__ = [
    "AttemptStale",
    "EndpointDisabled",
    "StepTokenExpired",
    "StepTokenInvalid",
    "cancel_run",
    "fire_schedule",
    "ingest_report",
    "invoke_endpoint",
    "plan_run",
    "reconcile_once",
    "rerun",
    "step_token",
    "submit_run",
]
