"""Control-worker tasks: thin wrappers over the run engine."""

import logging

from celery import shared_task
from django.db import close_old_connections

from pipelines_ui.pipelines.services import FIRE_SCHEDULE_TASK
from pipelines_ui.runs.engine import fire_schedule, reconcile_once
from runner.spec import SpecInvalid

log = logging.getLogger(__name__)


@shared_task(name="pipelines_ui.runs.reconcile", ignore_result=True)
def reconcile() -> dict:
    close_old_connections()  # a connection killed since the last pass is replaced (R7)
    report = reconcile_once()
    if not report.empty:
        log.info("reconciled: %s", report)
    return report.__dict__


# Named in the pipelines app, whose schedules' beat rows call it; the run starts here.
@shared_task(name=FIRE_SCHEDULE_TASK, ignore_result=True)
def fire(schedule_id: int) -> int | None:
    """Start one run of the schedule; returns its id (None when paused or gone)."""
    close_old_connections()
    try:
        run = fire_schedule(schedule_id)
    except SpecInvalid as exc:
        # The endpoint was republished with parameters the schedule no longer fits.
        log.warning("schedule %s started no run: %s", schedule_id, exc.to_dict())
        return None
    return run.pk if run else None
