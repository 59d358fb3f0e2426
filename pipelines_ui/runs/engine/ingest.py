"""Ingesting what workers report (runner.messages): log lines and metric points are stored
once (R8), state events (started, finished, failed) go through `runner.transitions`, and the
reply tells the worker whether to cancel its step."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from pipelines_ui.data.models import Artifact
from pipelines_ui.runs.broadcast import broadcast
from pipelines_ui.runs.engine.advance import advance, mark_running, step_view
from pipelines_ui.runs.engine.component_hooks import step_succeeded
from pipelines_ui.runs.engine.dispatch import send_on_commit, step_token
from pipelines_ui.runs.engine.events import Changes, step_event
from pipelines_ui.runs.engine.frozen_spec import node_policy
from pipelines_ui.runs.engine.handover import HandOver
from pipelines_ui.runs.engine.locks import lock_step
from pipelines_ui.runs.models import LogLine, MetricPoint, Run, StepRun
from runner import transitions
from runner.messages import parse_step_report


class StepTokenInvalid(Exception):
    """The report's token is not the one issued for that step attempt (401)."""


class StepTokenExpired(Exception):
    """The token's attempt succeeded: the token is spent (401, docs/reliability.md S5)."""


class AttemptStale(Exception):
    """The report is about an attempt that is no longer current (409: the worker stops)."""


def ingest_report(step_run_id: int, token: str, body: Any) -> dict[str, Any]:
    """Apply a worker's report (runner.messages): lines and points are stored once, state
    events go through the transition function. Returns the reply for the worker."""
    report = parse_step_report(body)
    attempt_id = report["attempt_id"]
    if not hmac.compare_digest(token, step_token(step_run_id, attempt_id)):
        raise StepTokenInvalid("the token is not valid for this step attempt")
    step = _current_step(step_run_id, attempt_id)
    final = [event["type"] in ("finished", "failed") for event in report["events"]]
    ends = any(final)
    if step.state == "succeeded" and not all(final):
        # Only a replay of the final event, answered as a duplicate, gets past a spent token.
        raise StepTokenExpired("this step attempt has finished; its token has expired")
    if step.is_terminal and not ends:
        # The server ended this attempt (lost, canceled): the worker must stop its step (R3).
        # A replayed final report still goes through, to be answered as a duplicate.
        raise AttemptStale(f"step {step.node} is already {step.state}")
    hand_over = HandOver.asked_by(step, report["events"]) if ends else None
    cancel = _apply_events(step, attempt_id, report["events"], hand_over)
    if ends:  # nothing left to cancel or to keep alive; perhaps the next step
        return {"ok": True, "cancel": False, **(hand_over.reply() if hand_over else {})}
    if not any(event["type"] == "started" for event in report["events"]):
        StepRun.objects.filter(pk=step.pk, attempt_id=attempt_id, state="running").update(
            last_heartbeat_at=timezone.now())
    # As read when the report came in; a cancel asked for since is told on the next report.
    return {"ok": True, "cancel": cancel}


def _current_step(step_run_id: int, attempt_id: str) -> StepRun:
    """The step as far as a report needs it; AttemptStale unless `attempt_id` is current."""
    try:
        step = StepRun.objects.only("run_id", "node", "state", "attempt", "attempt_id",
                                    "cancel_requested_at", "compute_target").get(pk=step_run_id)
    except StepRun.DoesNotExist:
        step = None
    if step is None or step.attempt_id != attempt_id:
        raise AttemptStale("this attempt is no longer current")
    return step


def _apply_events(step: StepRun, attempt_id: str, events: list[dict[str, Any]],
                  hand_over: HandOver | None = None) -> bool:
    """Store the lines and points, apply the state events in order; returns whether the step
    is asked to stop."""
    cancel = step.cancel_requested
    stored: list[dict[str, Any]] = []  # broadcast together, before any later state change
    for event in events:
        kind = event["type"]
        if kind == "log":
            stored.append(_store_lines(step, event))
        elif kind == "metric":
            stored.append(_store_points(step, event))
        elif kind != "heartbeat":
            broadcast(step.run_id, *stored)
            stored.clear()
            cancel = _apply_state_event(step, attempt_id, event, hand_over)
    broadcast(step.run_id, *stored)
    return cancel


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
    """Store a batch of metric points with one statement, a row a point; returns the event
    that tells browsers. Not bulk_create: a model instance a point, and an INSERT a hundred
    on SQLite, were most of the server's time on a step logging 100,000 points."""
    first, run_id, step_id, attempt = event["first"], step.run_id, step.pk, step.attempt
    adapt = connection.ops.adapt_datetimefield_value
    rows = [(run_id, step_id, attempt, first + i, p["key"], p["step"], p["value"],
             adapt(_from_unix(p["time"]))) for i, p in enumerate(event["points"])]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_insert_points_sql(), rows)
    return {"type": "metric", "node": step.node, "attempt": step.attempt, "first": first,
            "points": event["points"]}


def _insert_points_sql() -> str:
    """A point's INSERT; one already stored is left as it is, so a replay is a no-op (R8)."""
    fields = [MetricPoint._meta.get_field(name) for name in
              ("run", "step_run", "attempt", "index", "key", "step", "value", "time")]
    quote = connection.ops.quote_name
    return (f"INSERT INTO {quote(MetricPoint._meta.db_table)} "
            f"({', '.join(quote(field.column) for field in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING")


def _apply_state_event(reported: StepRun, attempt_id: str, event: dict[str, Any],
                       hand_over: HandOver | None = None) -> bool:
    """Apply a started, finished or failed event; returns whether the step is asked to stop."""
    with transaction.atomic():
        run, step = lock_step(reported.pk, reported.run_id)
        if step.attempt_id != attempt_id:
            raise AttemptStale("this attempt is no longer current")
        if event["type"] == "started" and step.state == "running" and step.claim == event["claim"]:
            return step.cancel_requested  # the same delivery's claim, retried: already applied
        outcome = transitions.apply_step_event(step_view(step), _transition_event(step, event),
                                               node_policy(run, step.node))
        if outcome.effect == "stale":
            raise AttemptStale(f"step {step.node} is {step.state}; attempt {step.attempt} "
                               "cannot report this")
        if outcome.effect == "duplicate":
            return step.cancel_requested
        _record_event(run, step, event, outcome)
        if event["type"] == "started":  # a claim never makes another step ready
            changes = Changes(run.pk, [step_event(step)])
            mark_running(run, {step.node: step_view(step)}, changes)
            changes.publish_on_commit()
        else:
            advance(run, step, hand_over=hand_over)
        return step.cancel_requested


def _transition_event(step: StepRun, event: dict[str, Any]):
    kind = event["type"]
    if kind == "started":
        return transitions.Claimed(step.attempt)
    if kind == "finished":
        return transitions.Succeeded(step.attempt)
    return transitions.Failed(step.attempt, retryable=event["reason"] != "canceled")


def _record_event(run: Run, step: StepRun, event: dict[str, Any],
                  outcome: transitions.StepOutcome) -> None:
    kind = event["type"]
    if kind == "started":
        step.claim_attempt(event["claim"], event["worker"], event["pid"])
    elif kind == "finished":
        step.finish_attempt(outcome.step.state, _record_outputs(run, step, event["outputs"]))
        step_succeeded(run, step)  # e.g. the registry's steps register or deploy
    elif outcome.effect == "retry":
        step.retry(outcome.step.attempt, **_failure(event))
        send_on_commit([step])
    else:
        step.end(outcome.step.state, **_failure(event))


def _failure(event: dict[str, Any]) -> dict[str, Any]:
    """What a failed event says about its attempt, as `StepRun.end` and `retry` take it."""
    return {"error": event.get("message") or event["reason"],
            "exit_code": event.get("exit_code"), "traceback": event.get("traceback", "")}


def _record_outputs(run: Run, step: StepRun, outputs: dict[str, Any]) -> dict[str, str]:
    Artifact.objects.bulk_create(
        [Artifact(workspace_id=run.workspace_id, digest=ref["digest"], uri=ref["uri"],
                  size=ref["size"], produced_by=step) for ref in outputs.values()],
        ignore_conflicts=True,  # content-addressed: the same tree may exist already
    )
    return {port: ref["digest"] for port, ref in outputs.items()}
