"""R3: duplicate deliveries of a running attempt never run the step twice or fail it.

While a step runs on one worker, its message is forced back onto the Redis queue the way the
transport does after the visibility timeout (`ZINCRBY unacked_index -<timeout> <tag>`, then
kombu's own restore), and the same StepJob is sent twice more. A second, idle worker takes
all three; each claim gets 409 and the message is acked and dropped.
"""

import base64
import json
import threading
import time

import psutil
import pytest
import redis
from django.conf import settings

from pipelines_ui.celery import app
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.runs.engine.dispatch import build_job
from pipelines_ui.runs.models import LogLine
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, runs_step_code, step_of, unique_target, wait_until

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("redis://"),
                       reason="forces a redelivery through Redis's unacked index"),
]

WAITS_FOR_RELEASE = """
    import os, time
    print('execution', os.getpid(), flush=True)
    while not os.path.exists({release!r}):
        time.sleep(0.05)
    """


class StepCensus(threading.Thread):
    """Counts, every 50 ms, the live processes of one run's steps under the workers that run
    step code: a delivery whose claim is refused forks nothing from the template that steps
    are forked from (runner.step_launch), and the template itself runs no step code."""

    def __init__(self, workers, run_id: int) -> None:
        super().__init__(daemon=True)
        self.workers, self.run_id = workers, str(run_id)
        self.most, self.seen = 0, set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            live = set()
            for worker in self.workers:
                for pid in worker.pids():
                    try:
                        process = psutil.Process(pid)
                    except psutil.Error:
                        continue
                    step = step_of(process)
                    if step is not None and step[0] == self.run_id and runs_step_code(process):
                        live.add(pid)
            self.seen |= live
            self.most = max(self.most, len(live))


def unacked_tag(client: redis.Redis, attempt_id: str) -> str | None:
    """The delivery tag of the unacked message that carries this attempt's StepJob."""
    for tag, raw in client.hgetall("unacked").items():
        message = json.loads(raw)[0]
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        if attempt_id in body:
            return tag.decode()
    return None


def test_redelivered_and_resent_jobs_of_a_running_attempt_are_dropped(engine, workspace, owner,
                                                                     tmp_path):
    name = unique_target()
    target = ComputeTarget.objects.create(workspace=workspace, name=name)
    # The step waits for a file outside its folder, where a confined step cannot look (S11):
    # these workers leave steps unconfined.
    workers = [WorkerProcess(name, engine.url, name=f"dup{i}",
                             extra_env={"PIPELINES_STEP_ISOLATION": "none"}) for i in (1, 2)]
    release = tmp_path / "release"
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    census = None
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("once", WAITS_FOR_RELEASE.format(release=str(release)), target=name,
                   allow_reuse=False)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="once", spec=spec)
        run = submit_run(pipeline, user=owner)
        step = run.steps.get()
        census = StepCensus(workers, run.pk)
        census.start()
        wait_until(lambda: LogLine.objects.filter(step_run=step, text__startswith="execution")
                   .exists(), timeout=60)

        # The transport's redelivery: make the message look older than the visibility
        # timeout, then let kombu restore it to the queue as a worker would.
        tag = wait_until(lambda: unacked_tag(broker, step.attempt_id), timeout=10)
        timeout = app.conf.broker_transport_options["visibility_timeout"]
        broker.zincrby("unacked_index", -(timeout + 60), tag)
        with app.connection_for_write() as connection:
            connection.default_channel.qos.restore_visible(num=1000)
        # And the same job sent twice more, as a confused scheduler would.
        step.refresh_from_db()
        job = build_job(step)
        for _ in range(2):
            app.send_task("runner.run_step", args=[job], queue=target.queue)

        def refused() -> int:
            return sum(w.output().count("attempt not claimed") for w in workers)

        wait_until(lambda: refused() >= 3, timeout=60)
        time.sleep(0.5)  # let the census look a few more times at a settled state
        release.touch()

        def done():
            run.refresh_from_db()
            return run.is_finished

        wait_until(done, timeout=60)
    finally:
        if census is not None:
            census.done.set()
        for worker in workers:
            worker.stop()
    step.refresh_from_db()
    assert (run.status, step.state, step.attempt, step.attempts) == (
        "succeeded", "succeeded", 1, [])
    assert refused() == 3
    executions = LogLine.objects.filter(step_run=step, text__startswith="execution")
    assert executions.count() == 1
    assert census.most == 1
    assert census.seen == {int(executions.get().text.split()[1])}
    assert unacked_tag(broker, step.attempt_id) is None  # every copy was acked
