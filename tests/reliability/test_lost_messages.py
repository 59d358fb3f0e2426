"""R2 (second half), R5: a job the broker lost is sent again after Q; nothing leaves before the
commit."""

import pytest
from django.db import transaction

from pipelines_ui.celery import app
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import reconcile_once, submit_run
from pipelines_ui.runs.models import LogLine, Run
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(120)


def hello(workspace, target: str) -> Pipeline:
    spec = {"parameters": {}, "edges": [], "nodes": [
        script("hello", "print('hello')", target=target, allow_reuse=False)]}
    return Pipeline.objects.create(workspace=workspace, name=unique_target(), spec=spec)


def test_a_queued_step_whose_message_was_lost_is_sent_again_after_q(engine, workspace, owner,
                                                                     settings, monkeypatch):
    settings.STEP_QUEUED_TIMEOUT_S = 2  # Q
    name = unique_target()
    target = ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url, key=issue_worker_key(target))
    try:
        # The broker takes the job and loses it (a restart without persistence).
        with monkeypatch.context() as patched:
            patched.setattr(app, "send_task", lambda *args, **kwargs: None)
            run = submit_run(hello(workspace, name), user=owner)
        step = run.steps.get()
        lost_attempt = step.attempt_id
        assert (step.state, step.dispatched_at is not None) == ("queued", True)

        def done():
            run.refresh_from_db()
            return run.is_finished

        wait_until(done, timeout=60, interval=0.5, tick=reconcile_once)
    finally:
        worker.stop()
    step.refresh_from_db()
    assert (run.status, step.state, step.attempt) == ("succeeded", "succeeded", 1)
    assert step.attempt_id != lost_attempt  # sent again under a new id, not counted (R11)
    assert LogLine.objects.filter(step_run=step, stream="system",
                                  text="no worker took this step in time; sending it again"
                                  ).exists()
    assert step.log_lines.filter(text="hello").exists()


def test_a_run_rolled_back_after_submit_sends_nothing(transactional_db, workspace, owner,
                                                      local_target, monkeypatch):
    sent = []
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: sent.append(args))
    with pytest.raises(RuntimeError), transaction.atomic():
        submit_run(hello(workspace, "local"), user=owner)
        raise RuntimeError("something later in the same transaction failed")
    assert sent == []
    assert not Run.objects.exists()
    submit_run(hello(workspace, "local"), user=owner)  # the spy does see a committed one
    assert len(sent) == 1
