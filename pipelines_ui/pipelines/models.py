"""Components (step types), pipelines and their draft spec, versions, endpoints, schedules."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from pipelines_ui.accounts.models import Workspace
from runner.components import ComponentDef, Port


class Component(models.Model):
    """A step type registered by a workspace. Built-in components live in runner.components."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="components")
    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    category = models.CharField(max_length=100, default="Custom")
    description = models.TextField(blank=True)
    inputs = models.JSONField(default=list)  # [{name, type, optional, description}]
    outputs = models.JSONField(default=list)
    params_schema = models.JSONField(default=dict)  # JSON Schema of the parameters
    command = models.JSONField(default=list)  # ["{python}", "main.py"]
    files = models.JSONField(default=dict)  # the component's code: file name -> text
    dynamic_ports = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name", "version"], name="component_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    def to_def(self) -> ComponentDef:
        return ComponentDef(
            name=self.name,
            version=self.version,
            title=self.title,
            category=self.category,
            description=self.description,
            inputs=tuple(Port.from_dict(p) for p in self.inputs),
            outputs=tuple(Port.from_dict(p) for p in self.outputs),
            params_schema=self.params_schema or {"type": "object"},
            command=tuple(self.command) or ("{python}", "main.py"),
            files=dict(self.files),
            dynamic_ports=self.dynamic_ports,
        )


def empty_spec() -> dict:
    return {"parameters": {}, "nodes": [], "edges": []}


class Pipeline(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="pipelines")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    spec = models.JSONField(default=empty_spec)  # the draft, saved by the editor or the SDK
    # Bumped on each save, so a save based on a stale draft can be refused, not silently lost.
    revision = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="pipeline_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class PipelineVersion(models.Model):
    """A frozen copy of a pipeline's spec. Never changed once written."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    spec = models.JSONField()
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pipeline", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "number"], name="version_number_unique")
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} v{self.number}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("pipeline versions are immutable; publish a new version instead")
        super().save(*args, **kwargs)


class Endpoint(models.Model):
    """A published pipeline: a stable name that runs its default version when called."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="endpoints")
    name = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="endpoints")
    default_version = models.ForeignKey(
        PipelineVersion, on_delete=models.PROTECT, related_name="default_for"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="endpoint_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Schedule(models.Model):
    """Runs an endpoint on a cron expression. Its django-celery-beat row is owned by it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="schedules")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=100)
    cron = models.CharField(max_length=100)  # five fields: minute hour day month weekday
    time_zone = models.CharField(max_length=64, default="UTC")
    parameters = models.JSONField(default=dict)
    enabled = models.BooleanField(default=True)
    # related_name: the default ("schedule") would hide PeriodicTask.schedule, which beat
    # reads on every row, its own interval tasks included.
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="pipeline_schedule",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron})"
