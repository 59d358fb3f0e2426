"""Why a queued step has not started yet: the one sentence the run page and the API show, and
a word for its kind (WORKER or LOST_ATTEMPT) that picks the run graph's short label.

A step never waits in silence: when nothing can take it, it says what it waits for and for how
long. Callers showing many steps load them with their target's workers
(`prefetch_related("compute_target__workers")`), so the answer costs no query per step.
"""

from __future__ import annotations

from datetime import datetime

from pipelines_ui.runs.durations import format_duration
from pipelines_ui.runs.models import StepRun

# What a step waits for, as a word: the run graph's short label is chosen by it.
WORKER = "worker"
LOST_ATTEMPT = "lost_attempt"


def waiting_reason(step_run: StepRun, now: datetime) -> str | None:
    """What the step waits for, or None when it is not waiting on anything it lacks."""
    found = waiting(step_run, now)
    return found[1] if found else None


def waiting(step_run: StepRun, now: datetime) -> tuple[str, str] | None:
    """(WORKER or LOST_ATTEMPT, the sentence) of what the step waits for, or None."""
    if step_run.state != "queued":
        return None
    stops_at = lost_attempt_stops_at(step_run)
    if stops_at is not None and stops_at > now:
        return LOST_ATTEMPT, ("waiting for the lost attempt to stop "
                              f"(at most {format_duration(stops_at - now)})")
    target = step_run.compute_target
    if target is None or not any(worker.is_online(now) for worker in target.workers.all()):
        # A deleted target has no workers either: the step waits until it is canceled.
        name = target.name if target is not None else "a deleted compute target"
        return WORKER, f"waiting for a worker on {name}{_waited(step_run, now)}"
    return None


def lost_attempt_stops_at(step_run: StepRun) -> datetime | None:
    """For a retry not sent yet because its worker was lost: when the lost attempt's
    processes are gone for sure, so that the retry may start (R16); else None."""
    if step_run.state != "queued" or step_run.dispatched_at is not None or not step_run.attempts:
        return None
    stops_at = step_run.attempts[-1].get("stops_at")
    return datetime.fromisoformat(stops_at) if stops_at else None


def _waited(step_run: StepRun, now: datetime) -> str:
    return f" for {format_duration(now - step_run.queued_at)}" if step_run.queued_at else ""
