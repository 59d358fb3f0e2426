"""R7: a short database outage loses nothing and fails nothing (PostgreSQL only).

While a step prints 2,000 numbered lines, every other backend of the test database is killed
every 200 ms for 3 s. The ingestion API answers 503 (never a 500) and the worker retries.
"""

import threading
import time

import psycopg
import pytest
from django.db import close_old_connections, connection

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.runs.models import LogLine
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(180)

NUMBERED = """
    import time
    for i in range(2000):
        print(f'line {i}', flush=True)
        time.sleep(0.002)
    """


def kill_backends(dsn: str, stop: threading.Event) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        while not stop.is_set():
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            time.sleep(0.2)


def retrying(query):
    """Read from the test's own side, whose connection the blip also kills."""
    def attempt():
        try:
            return query()
        except Exception:
            close_old_connections()
            connection.close()
            return None
    return attempt


def test_killed_database_connections_fail_no_step_and_lose_no_line(engine, workspace, owner,
                                                                   caplog):
    if connection.vendor != "postgresql":
        pytest.skip("the blip is made with pg_terminate_backend")
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url)
    settings_dict = connection.settings_dict
    dsn = (f"host={settings_dict['HOST'] or '127.0.0.1'} port={settings_dict['PORT'] or 5432} "
           f"user={settings_dict['USER']} dbname={settings_dict['NAME']}")
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("numbered", NUMBERED, target=name, allow_reuse=False)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="blip", spec=spec)
        run = submit_run(pipeline, user=owner)
        step_id = run.steps.get().pk
        wait_until(lambda: LogLine.objects.filter(step_run=step_id).exists(), timeout=60)
        stop = threading.Event()
        killer = threading.Thread(target=kill_backends, args=(dsn, stop))
        killer.start()
        time.sleep(3)  # the length of the outage
        stop.set()
        killer.join()
        close_old_connections()
        connection.close()
        wait_until(retrying(lambda: run.__class__.objects.get(pk=run.pk).is_finished),
                   timeout=90, interval=0.5)
    finally:
        worker.stop()
    run.refresh_from_db()
    assert run.status == "succeeded", run.steps.get().error
    texts = list(LogLine.objects.filter(step_run=step_id, stream="stdout")
                 .order_by("index").values_list("text", flat=True))
    assert texts == [f"line {i}" for i in range(2000)]
    assert not [r for r in caplog.records if "Internal Server Error" in r.getMessage()]
