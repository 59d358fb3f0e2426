"""Runs, step runs, and what steps report: log lines and metric points."""

from __future__ import annotations

from django.conf import settings
from django.db import models
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
