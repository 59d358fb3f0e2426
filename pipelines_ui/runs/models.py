"""Runs, step runs, and what steps report: log lines and metric points.

The methods that change a run or a step change that one row, as the run engine tells them
(runs/engine, after `runner.transitions` decided); the caller holds the run's lock (R10).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from pipelines_ui.accounts.models import ApiToken, Workspace
from pipelines_ui.pipelines.models import Endpoint, Pipeline, PipelineVersion, Schedule
from runner.transitions import RUN_STATES, STEP_STATES, TERMINAL_STEP_STATES


class Run(models.Model):
    class Trigger(models.TextChoices):
        USER = "user", "User"
        ENDPOINT = "endpoint", "Endpoint"
        SCHEDULE = "schedule", "Schedule"
        RERUN = "rerun", "Rerun"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="runs")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(
        PipelineVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    spec = models.JSONField()  # frozen at submit
    parameters = models.JSONField(default=dict)  # complete, typed values
    status = models.CharField(
        max_length=10, choices=[(s, s) for s in RUN_STATES], default="queued"
    )
    canceling = models.BooleanField(default=False)
    # False for "rerun all": every step runs again even where an identical one succeeded.
    allow_reuse = models.BooleanField(default=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.USER)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="runs",
    )
    token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="run_ws_created"),
            models.Index(fields=["workspace", "status", "-created_at"], name="run_ws_status"),
            models.Index(fields=["pipeline", "-created_at"], name="run_pipeline_created"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.pipeline_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled")

    def start(self) -> None:
        """The run is running: a step started or was reused."""
        self.status = "running"
        self.started_at = timezone.now()
        self.save(update_fields=["status", "started_at"])

    def finish(self, status: str) -> bool:
        """End the run in `status`; False (and nothing changed) if it had ended already."""
        if self.is_finished:
            return False
        self.status = status
        self.finished_at = timezone.now()
        self.started_at = self.started_at or self.finished_at
        self.save(update_fields=["status", "finished_at", "started_at"])
        return True

    def request_cancel(self) -> bool:
        """Mark the run canceling; False (and nothing changed) if it ended or is canceling."""
        if self.is_finished or self.canceling:
            return False
        self.canceling = True
        self.save(update_fields=["canceling"])
        return True


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="run_tag_unique")]
        indexes = [models.Index(fields=["name"], name="run_tag_name")]

    def __str__(self) -> str:
        return self.name


class StepRun(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    node = models.CharField(max_length=64)
    component = models.CharField(max_length=120)  # "name@version"
    compute_target = models.ForeignKey(
        "compute.ComputeTarget", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="step_runs",
    )
    state = models.CharField(
        max_length=10, choices=[(s, s) for s in STEP_STATES], default="pending"
    )
    # The current attempt: its number, the id a worker must claim, and its one-attempt token.
    attempt = models.PositiveIntegerField(default=0)
    attempt_id = models.CharField(max_length=32, blank=True, db_index=True)
    claim = models.CharField(max_length=64, blank=True)  # the delivery that claimed it
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Set when the attempt's StepJob reached the broker; null means "send again" (R5).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)  # one line a person reads first
    traceback = models.TextField(blank=True)
    # Summaries of earlier attempts: [{attempt, state, error, worker, started_at, finished_at}]
    attempts = models.JSONField(default=list)
    # What the step ran with, and why it ran or which run it reused.
    params = models.JSONField(default=dict)
    inputs = models.JSONField(default=dict)  # port -> artifact digest
    outputs = models.JSONField(default=dict)  # port -> artifact digest
    fingerprint = models.CharField(max_length=71, blank=True)
    fingerprint_parts = models.JSONField(default=dict)
    reason = models.TextField(blank=True)  # "parameter alpha changed from 0.5 to 0.7", ...
    reused_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reused_by"
    )
    allow_reuse = models.BooleanField(default=True)
    consumed = models.ManyToManyField("data.Artifact", blank=True, related_name="consumers")

    class Meta:
        ordering = ["-run_id", "id"]  # newest run first, as Run sorts; no join with its table
        constraints = [models.UniqueConstraint(fields=["run", "node"], name="step_node_unique")]
        indexes = [
            models.Index(fields=["fingerprint", "state"], name="step_fingerprint"),
            models.Index(fields=["state", "last_heartbeat_at"], name="step_state_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"{self.node} of run {self.run_id} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STEP_STATES

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_requested_at is not None

    def queue_attempt(self, attempt: int) -> None:
        """Queue attempt number `attempt` under a fresh id; the caller sends its job on commit."""
        self.state = "queued"
        self.attempt = attempt
        self.attempt_id = uuid.uuid4().hex
        self.claim = ""
        self.queued_at = timezone.now()
        self.dispatched_at = None
        self.started_at = self.finished_at = self.last_heartbeat_at = None
        self.worker, self.pid, self.exit_code = "", None, None
        self.error = self.traceback = ""
        self.save()

    # What reuse_from changes, beside what fingerprinting set: for a caller that saves many.
    REUSE_FIELDS = ("state", "outputs", "reused_from", "reason", "started_at", "finished_at",
                    "params", "inputs", "fingerprint", "fingerprint_parts")

    @classmethod
    def save_each(cls, steps: list[StepRun], fields: tuple[str, ...]) -> None:
        """Save `fields` of many steps, each with its own values, in one executemany. Django's
        bulk_update builds a CASE per field and row: slower than saving each in turn."""
        if not steps:
            return
        columns = [cls._meta.get_field(name) for name in fields]
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
        rows = [[column.get_db_prep_save(getattr(step, column.attname), connection)
                 for column in columns] + [step.pk] for step in steps]
        with connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {quote(cls._meta.db_table)} SET {assignments} "
                               f"WHERE {quote(cls._meta.pk.column)} = %s", rows)

    def reuse_from(self, earlier: StepRun, *, save: bool = True) -> None:
        """Take the outputs of an identical step that succeeded earlier, instead of running
        (unsaved with `save=False`: the caller saves REUSE_FIELDS)."""
        self.state = "reused"
        self.outputs = earlier.outputs
        self.reused_from = earlier
        self.reason = f"reused the outputs of run {earlier.run_id} (step {earlier.node})"
        self.started_at = self.finished_at = timezone.now()
        if save:
            self.save()

    def claim_attempt(self, claim: str, worker: str, pid: int | None) -> None:
        """A worker's delivery `claim` took the current attempt: it is running."""
        self.state = "running"
        self.claim, self.worker, self.pid = claim, worker, pid
        self.started_at = self.last_heartbeat_at = timezone.now()
        self.save(update_fields=["state", "claim", "worker", "pid", "started_at",
                                 "last_heartbeat_at"])

    def finish_attempt(self, state: str, outputs: dict[str, str]) -> None:
        """The current attempt ended in `state` with `outputs` (port -> artifact digest)."""
        self.outputs = outputs
        self.exit_code = 0
        self.state, self.finished_at = state, timezone.now()
        self.save(update_fields=["outputs", "exit_code", "state", "finished_at"])

    def end(self, state: str, error: str, *, exit_code: int | None = None,
            traceback: str = "") -> None:
        """End the step in `state` (failed, skipped, canceled), saying why in `error`."""
        self.state, self.error = state, error
        self.exit_code, self.traceback = exit_code, traceback
        self.finished_at = timezone.now()
        self.save(update_fields=["state", "error", "exit_code", "traceback", "finished_at"])

    def retry(self, attempt: int, *, error: str, exit_code: int | None = None,
              traceback: str = "", stops_at: datetime | None = None) -> None:
        """End the current attempt as failed and queue attempt number `attempt`. The failed
        attempt is summed up in `attempts` (with `stops_at`, when its processes are gone for
        sure, for a lost one: R16) and in the log; the caller sends the new job on commit."""
        self.error, self.exit_code, self.traceback = error, exit_code, traceback
        self.finished_at = timezone.now()
        summary = {"attempt": self.attempt, "error": error, "exit_code": exit_code,
                   "worker": self.worker,
                   "started_at": self.started_at.isoformat() if self.started_at else None,
                   "finished_at": self.finished_at.isoformat()}
        if stops_at is not None:
            summary["stops_at"] = stops_at.isoformat()
        self.attempts = [*self.attempts, summary]
        self.log_system_line(f"attempt {self.attempt} failed: {error}; retrying")
        self.queue_attempt(attempt)

    def request_cancel(self) -> None:
        """Ask the worker running the step to stop it (told in the reply to its next report)."""
        self.cancel_requested_at = timezone.now()
        self.save(update_fields=["cancel_requested_at"])

    def log_system_line(self, text: str) -> None:
        """A line from the server itself in the current attempt's log (lost worker, retry)."""
        taken = LogLine.objects.filter(step_run=self, attempt=self.attempt,
                                       index__gte=LogLine.SYSTEM_INDEX_BASE).count()
        LogLine.objects.create(step_run=self, attempt=self.attempt, stream="system", text=text,
                               index=LogLine.SYSTEM_INDEX_BASE + taken, time=timezone.now())


class LogLine(models.Model):
    """One line of a step's output. (step_run, attempt, index) makes replays no-ops (R8).

    The worker numbers its lines from 1; lines the server writes itself (an attempt lost, a
    retry) take indexes from SYSTEM_INDEX_BASE so they sort after the attempt's own output.
    """

    SYSTEM_INDEX_BASE = 2_000_000_000

    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="log_lines")
    attempt = models.PositiveIntegerField()
    index = models.PositiveIntegerField()
    stream = models.CharField(max_length=6)  # stdout, stderr, system
    text = models.TextField()
    time = models.DateTimeField()

    class Meta:
        ordering = ["step_run", "attempt", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["step_run", "attempt", "index"], name="log_line_unique"
            )
        ]


class MetricPoint(models.Model):
    """One value of a metric a step logged; (step_run, attempt, index) is unique (R8)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_points")
    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="metric_points")
    attempt = models.PositiveIntegerField()
    index = models.PositiveIntegerField()
    key = models.CharField(max_length=200)
    step = models.BigIntegerField(null=True, blank=True)
    value = models.FloatField()
    time = models.DateTimeField()

    class Meta:
        ordering = ["run", "key", "step_run", "attempt", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["step_run", "attempt", "index"], name="metric_point_unique"
            )
        ]
        indexes = [models.Index(fields=["run", "key", "step_run", "step"], name="metric_lookup")]
