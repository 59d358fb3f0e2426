"""The model registry: named models, their numbered versions, and which versions are served."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from pipelines_ui.accounts.models import Workspace
from pipelines_ui.data.models import Artifact


class RegisteredModel(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="registered_models")
    name = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "model"
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="registered_model_unique")
        ]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One registered model artifact (model.joblib and settings.json) with its metrics."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    artifact = models.ForeignKey(Artifact, on_delete=models.PROTECT, related_name="+")
    metrics = models.JSONField(default=dict, blank=True)  # metric key -> value
    description = models.TextField(blank=True)
    # Lineage: the register-model step run (its run and node); null when a person registered it.
    step_run = models.ForeignKey("runs.StepRun", null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # Served by the scoring endpoint while set.
    deployed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="model_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.model} v{self.number}"

    @property
    def is_deployed(self) -> bool:
        return self.deployed_at is not None
