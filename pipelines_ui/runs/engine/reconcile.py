"""The reconciler: one pass over what events may have missed (beat calls it every few seconds).

Attempts whose worker went silent are retried or failed (R2), jobs that never reached the
broker are sent (R5), jobs the broker may have lost are sent again under a new attempt id
(R11, R17), a retry waits until its lost attempt is gone for sure (R16), and a cancel the
worker never confirmed ends the step anyway (R12). Each pass is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pipelines_ui.compute.models import Worker
from pipelines_ui.runs.broker_restarts import broker_restarted
from pipelines_ui.runs.engine.advance import advance, step_view
from pipelines_ui.runs.engine.dispatch import dispatch, lost_contact_s, send_on_commit
from pipelines_ui.runs.engine.frozen_spec import node_policy
from pipelines_ui.runs.engine.locks import lock_step
from pipelines_ui.runs.models import StepRun
from pipelines_ui.runs.waiting import lost_attempt_stops_at
from runner import step_launch, transitions


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
        run, step = lock_step(step_run_id)
        if step.attempt_id != attempt_id or step.state != "running":
            return False  # it reported, or someone else already handled it
        outcome = transitions.apply_step_event(
            step_view(step), transitions.Lost(step.attempt), node_policy(run, step.node))
        if outcome.effect not in ("applied", "retry"):
            return False
        step.log_system_line(f"attempt {step.attempt} lost: {reason}")
        if outcome.effect == "retry":
            stops_at = _lost_attempt_stops_at(step)
            gone = stops_at <= timezone.now()
            step.retry(outcome.step.attempt, error=reason, stops_at=stops_at)
            if gone:  # else the reconciler sends it once the lost attempt is gone (R16)
                send_on_commit([step])
        else:
            step.end(outcome.step.state, reason)
        advance(run, step)
    return True


def _lost_attempt_stops_at(step: StepRun) -> datetime:
    """When a lost attempt's processes are gone for sure: its worker's lease on contact ends
    at most lost_contact_s after the last report the server took, and the step's supervisor
    has ended the process group STOPPED_WITHIN_S after that, even if the worker is frozen
    (runner.step_launch). Its retry is not sent before (R16)."""
    last_contact = step.last_heartbeat_at or step.started_at or timezone.now()
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
        _, step = lock_step(step_run_id)
        if step.state != "queued" or step.attempt_id != attempt_id:
            return False
        step.log_system_line(why)
        step.queue_attempt(step.attempt)
        send_on_commit([step])
    return True


def _force_cancel(now: datetime, report: ReconcileReport) -> None:
    """Steps asked to cancel whose worker never answered (it may be dead) end canceled (R12)."""
    cutoff = now - timedelta(seconds=settings.STEP_CANCEL_TIMEOUT_S)
    for step_run_id in StepRun.objects.filter(
        state__in=("queued", "running"), cancel_requested_at__lt=cutoff
    ).values_list("pk", flat=True):
        with transaction.atomic():
            run, step = lock_step(step_run_id)
            if step.state not in ("queued", "running"):
                continue
            step.log_system_line("canceled: the worker did not confirm in time")
            step.end("canceled", "canceled (the worker did not confirm in time)")
            advance(run, step)
        report.cancel_forced.append(step_run_id)
