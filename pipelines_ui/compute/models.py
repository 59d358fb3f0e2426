"""Compute targets (a Celery queue with a hardware description) and the workers serving them."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from pipelines_ui.accounts.models import Workspace


class ComputeTarget(models.Model):
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="compute_targets"
    )
    # Globally unique: a worker starts with `--target NAME` and consumes queue compute.NAME.
    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    # What the target offers: {"cpus": 8, "memory_gb": 32, "gpus": [{"name": ...}], "labels": []}
    hardware = models.JSONField(default=dict, blank=True)
    max_concurrency = models.PositiveIntegerField(default=4)
    # Interpreter for steps (a virtualenv's python); empty means the worker's own.
    python = models.CharField(max_length=500, blank=True)
    # Workers of this target announce themselves with this key (stored hashed).
    worker_key_hash = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return f"compute.{self.name}"


class Worker(models.Model):
    target = models.ForeignKey(ComputeTarget, on_delete=models.CASCADE, related_name="workers")
    hostname = models.CharField(max_length=255)
    slots = models.PositiveIntegerField(default=1)
    busy = models.PositiveIntegerField(default=0)
    resources = models.JSONField(default=dict)  # cpus, memory_bytes, gpus seen by the worker
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    stopped = models.BooleanField(default=False)

    class Meta:
        ordering = ["target", "hostname"]
        constraints = [
            models.UniqueConstraint(fields=["target", "hostname"], name="worker_unique")
        ]

    def __str__(self) -> str:
        return self.hostname

    @property
    def state(self) -> str:
        if self.stopped:
            return "stopped"
        lost_after = timedelta(seconds=settings.WORKER_LOST_AFTER_S)
        return "online" if timezone.now() - self.last_seen_at < lost_after else "lost"
