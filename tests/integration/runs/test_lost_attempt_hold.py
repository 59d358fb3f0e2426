"""R16: the retry of a lost attempt is not sent before the lost attempt's processes are gone
for sure: the worker's lease on contact plus the step supervisor's bound after the last
report the server took. Meanwhile the step says what it waits for."""

from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines_ui.celery import app
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import reconcile_once, submit_run
from pipelines_ui.runs.engine.dispatch import lost_contact_s
from pipelines_ui.runs.models import StepRun
from pipelines_ui.runs.queries import run_page_data
from pipelines_ui.runs.waiting import waiting_reason
from runner import step_launch
from tests.integration.runs.specs import script

WAITING = "waiting for the lost attempt to stop"


@pytest.fixture
def sent(transactional_db, monkeypatch):
    """The jobs sent to the broker (a list instead)."""
    jobs = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **options: jobs.append(args[0]))
    return jobs


def running_step_silent_for(workspace, owner, seconds: float) -> tuple[StepRun, object]:
    ComputeTarget.objects.create(workspace=workspace, name="local")
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("train", "pass", target="local", allow_reuse=False, retries=1)]}
    run = submit_run(Pipeline.objects.create(workspace=workspace, name="p", spec=spec),
                     user=owner)
    last_contact = timezone.now() - timedelta(seconds=seconds)
    StepRun.objects.filter(run=run).update(state="running", claim="c", started_at=last_contact,
                                           last_heartbeat_at=last_contact)
    return run.steps.get(), last_contact


def test_the_retry_waits_until_the_lost_attempt_is_gone_and_says_so(sent, workspace, owner,
                                                                    settings):
    settings.STEP_HEARTBEAT_S, settings.STEP_LOST_AFTER_S = 0.5, 3
    step, last_contact = running_step_silent_for(workspace, owner, seconds=4)
    gone_at = last_contact + timedelta(seconds=lost_contact_s() + step_launch.STOPPED_WITHIN_S)
    del sent[:]

    now = timezone.now()
    assert reconcile_once(now).lost == [step.pk]
    step.refresh_from_db()
    assert (step.state, step.attempt, step.dispatched_at, sent) == ("queued", 2, None, [])
    assert waiting_reason(step, now).startswith(f"{WAITING} (at most ")
    assert run_page_data(step.run)["run"]["steps"][0]["waiting"].startswith(WAITING)

    reconcile_once(gone_at - timedelta(seconds=0.5))
    assert sent == []
    reconcile_once(gone_at + timedelta(seconds=0.1))
    assert [(job["attempt"], job["attempt_id"]) for job in sent] == [(2, step.attempt_id)]
    step.refresh_from_db()
    assert not (waiting_reason(step, gone_at) or "").startswith(WAITING)


def test_at_the_default_timeouts_the_lost_attempt_is_gone_before_it_is_found_lost(
        sent, workspace, owner, settings):
    assert lost_contact_s() + step_launch.STOPPED_WITHIN_S < settings.STEP_LOST_AFTER_S
    step, _ = running_step_silent_for(workspace, owner, seconds=settings.STEP_LOST_AFTER_S + 1)
    del sent[:]
    assert reconcile_once().lost == [step.pk]
    assert [job["attempt"] for job in sent] == [2]
