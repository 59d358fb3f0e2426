"""Datastores, content-addressed artifacts with their lineage, and versioned datasets."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from pipelines_ui.accounts.models import Workspace


class Datastore(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="datastores")
    name = models.SlugField(max_length=64)
    url = models.CharField(max_length=500)  # an fsspec URL: file:///..., s3://bucket/prefix
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="datastore_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Artifact(models.Model):
    """An immutable file tree, named by the digest of its content."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="artifacts")
    digest = models.CharField(max_length=71)  # "sha256:" + 64 hex
    uri = models.CharField(max_length=1000)
    size = models.BigIntegerField(default=0)
    # Lineage: the step run that produced it (null for uploads). Consumers: StepRun.consumed.
    produced_by = models.ForeignKey(
        "runs.StepRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="produced"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "digest"], name="artifact_unique")
        ]

    def __str__(self) -> str:
        return self.digest[:19]


class Dataset(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="datasets")
    name = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="dataset_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    artifact = models.ForeignKey(Artifact, on_delete=models.PROTECT, related_name="+")
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # Lineage: the register-dataset step run that registered it (null when a person did).
    step_run = models.ForeignKey(
        "runs.StepRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.dataset} v{self.number}"
