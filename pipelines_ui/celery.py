"""The control worker's Celery app: Django-aware, queue `control` (reconciler, schedules)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipelines_ui.settings")

app = Celery("pipelines_ui")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["pipelines_ui.runs"])  # the reconciler and the schedules
