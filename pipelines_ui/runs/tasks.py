"""Control-worker tasks: thin wrappers over the run engine."""

import logging

from celery import shared_task
from django.db import close_old_connections

from pipelines_ui.runs.engine import reconcile_once

log = logging.getLogger(__name__)


@shared_task(name="pipelines_ui.runs.reconcile", ignore_result=True)
def reconcile() -> dict:
    close_old_connections()  # a connection killed since the last pass is replaced (R7)
    report = reconcile_once()
    if not report.empty:
        log.info("reconciled: %s", report)
    return report.__dict__
