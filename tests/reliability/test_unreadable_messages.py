"""A message no consumer could read is set aside; the worker keeps consuming (R18)."""

import pytest
import redis
from django.conf import settings
from kombu import Connection

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(120)

UNREADABLE = [b"not json", b'{"body": "eyJh", "properties": {"delivery_tag"', b"42", b"{}",
              b"\xff\xfe"]


def broker_client() -> redis.Redis:
    """A Redis client on the broker's database, whichever URL form the broker has."""
    with Connection(settings.CELERY_BROKER_URL) as connection:
        channel = connection.default_channel
        return redis.Redis(connection_pool=channel.pool)


@pytest.fixture
def target(engine, workspace):
    target = ComputeTarget.objects.create(workspace=workspace, name=unique_target())
    target.key = issue_worker_key(target)
    return target


def test_unreadable_messages_are_set_aside_and_the_worker_runs_the_next_step(
        engine, workspace, target, owner):
    broker = broker_client()
    queue = target.queue
    for raw in UNREADABLE:  # on the queue before the worker starts: its first reads
        broker.lpush(queue, raw)
    worker = WorkerProcess(target.name, engine.url, key=target.key)
    pipeline = Pipeline.objects.create(workspace=workspace, name="after garbage", spec={
        "nodes": [script("a", "print('still consuming')", target=target.name)], "edges": []})

    run = submit_run(pipeline, user=owner)

    def done():
        run.refresh_from_db()
        return run.is_finished

    try:
        wait_until(done, timeout=60)
        assert worker.process.poll() is None, worker.output()[-3000:]
    finally:
        worker.stop()
    assert run.status == "succeeded", [(s.node, s.state, s.error) for s in run.steps.all()]
    assert "Unrecoverable error" not in worker.output()
    assert sorted(broker.lrange(f"rejected:{queue}", 0, -1)) == sorted(UNREADABLE)
    assert worker.output().count("Set aside an unreadable message") == len(UNREADABLE)

