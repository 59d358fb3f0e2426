"""Control-worker tasks of the pipelines app: beat fires schedules through here."""

import logging

from celery import shared_task
from django.db import close_old_connections

from pipelines_ui.pipelines.services import FIRE_SCHEDULE_TASK, SpecInvalid, fire_schedule

log = logging.getLogger(__name__)


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
