"""Compute targets (a Celery queue with a hardware description) and the workers serving them."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
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
    # Where a new step of the workspace runs unless its author picks another target.
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace"], condition=models.Q(is_default=True),
                                    name="compute_target_one_default"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """Keep one default per workspace, whoever saves (API, admin, seed): a new default
        replaces the previous one, and a workspace's first target is its default."""
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "is_default" not in update_fields:
            super().save(*args, **kwargs)
            return
        with transaction.atomic():
            # Two admins choosing defaults at once take turns here, not a constraint error.
            Workspace.objects.select_for_update().filter(pk=self.workspace_id).first()
            others = ComputeTarget.objects.filter(workspace=self.workspace_id,
                                                  is_default=True).exclude(pk=self.pk)
            if self.is_default:
                others.update(is_default=False)
            elif self._state.adding and not others.exists():
                self.is_default = True
            super().save(*args, **kwargs)

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
        return "online" if self.is_online(timezone.now()) else "lost"

    def is_online(self, now: datetime) -> bool:
        """Heard from within WORKER_LOST_AFTER_S of `now`, and not stopping."""
        lost_after = timedelta(seconds=settings.WORKER_LOST_AFTER_S)
        return not self.stopped and now - self.last_seen_at < lost_after
