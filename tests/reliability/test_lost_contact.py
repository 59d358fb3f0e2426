"""R4: a worker that cannot reach the server stops its step before anyone retries it.

The worker reports through a proxy that freezes for 2T, as a SIGSTOPped server would: its
requests hang unanswered. The worker kills its step after lost_contact_s (< T); the server
marks the attempt lost after T and a second worker starts attempt 2. psutil's timestamps
show the old step process gone before the new one was created.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psutil
import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import reconcile_once, submit_run
from pipelines_ui.runs.engine.dispatch import lost_contact_s
from pipelines_ui.runs.models import LogLine
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, step_of, unique_target, wait_until

pytestmark = pytest.mark.timeout(180)

T = 5  # STEP_LOST_AFTER_S for this test

SECOND_ATTEMPT_SUCCEEDS = """
    import os, time
    from runner import context
    print('attempt', context.attempt(), 'pid', os.getpid(), flush=True)
    time.sleep(1000 if context.attempt() == 1 else 1)
    """


class FreezingProxy(ThreadingHTTPServer):
    """Forwards POSTs to the server; while frozen, holds them unanswered (like SIGSTOP)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.thawed = threading.Event()
        self.thawed.set()
        self.client = httpx.Client(timeout=30)
        self.active = 0  # requests being handled; the test waits for none before teardown
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        with self.server.lock:
            self.server.active += 1
        try:
            self._forward()
        finally:
            with self.server.lock:
                self.server.active -= 1

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.thawed.wait()
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        try:
            response = self.server.client.post(self.server.upstream + self.path, content=body,
                                               headers=headers)
            self.send_response(response.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)
        except (httpx.HTTPError, OSError):  # the worker gave up on this request meanwhile
            pass

    def log_message(self, *args) -> None:
        pass


class Timeline(threading.Thread):
    """Every 20 ms: when `old_pid` was first seen gone, and the creation time of every step
    process of the run under the workers (psutil)."""

    def __init__(self, workers, run_id: int, old_pid: int) -> None:
        super().__init__(daemon=True)
        self.workers, self.run_id, self.old_pid = workers, str(run_id), old_pid
        self.old_gone_at: float | None = None
        self.created: dict[int, tuple[str, float]] = {}  # pid -> (attempt, create_time)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            if self.old_gone_at is None and not _alive(self.old_pid):
                self.old_gone_at = time.time()
            for worker in self.workers:
                for pid in worker.pids():
                    if pid in self.created:
                        continue
                    try:
                        process = psutil.Process(pid)
                        step = step_of(process)
                        if step is not None and step[0] == self.run_id:
                            # At or before the step's launch: it may have waited for it.
                            self.created[pid] = (step[1], process.create_time())
                    except psutil.Error:
                        continue


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_step_cut_off_from_the_server_ends_before_its_retry_starts(engine, workspace, owner,
                                                                     settings):
    settings.STEP_LOST_AFTER_S = T
    assert lost_contact_s() < T  # the worker gives up first, by design
    proxy = FreezingProxy(engine.url)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    workers = [WorkerProcess(name, engine.url, name=f"cut{i}") for i in (1, 2)]
    timeline = None
    try:
        settings.PIPELINES_SERVER_URL = proxy.url  # attempt 1 reports through the proxy
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("long", SECOND_ATTEMPT_SUCCEEDS, target=name, allow_reuse=False,
                   retries=1)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="cut", spec=spec)
        run = submit_run(pipeline, user=owner)
        step = run.steps.get()
        first = wait_until(lambda: LogLine.objects.filter(
            step_run=step, text__startswith="attempt 1 pid").first(), timeout=60)
        old_pid = int(first.text.split()[-1])
        timeline = Timeline(workers, run.pk, old_pid)
        timeline.start()
        settings.PIPELINES_SERVER_URL = engine.url  # attempt 2 reports directly

        proxy.thawed.clear()  # the server stops answering attempt 1's worker...
        frozen_at = time.monotonic()

        def retried():
            step.refresh_from_db()
            return step.attempt == 2

        wait_until(retried, timeout=3 * T, interval=0.2, tick=reconcile_once)
        time.sleep(max(0.0, 2 * T - (time.monotonic() - frozen_at)))  # ...for 2T in all
        proxy.thawed.set()

        def done():
            run.refresh_from_db()
            return run.is_finished

        wait_until(done, timeout=60, interval=0.2, tick=reconcile_once)
    finally:
        if timeline is not None:
            timeline.done.set()
        proxy.thawed.set()
        for worker in workers:
            worker.stop()
        wait_until(lambda: proxy.active == 0, timeout=30)
        proxy.shutdown()
    step.refresh_from_db()
    assert (run.status, step.state, step.attempt) == ("succeeded", "succeeded", 2)
    assert step.attempts[0]["error"].startswith("worker lost")
    second = [created for attempt, created in timeline.created.values() if attempt == "2"]
    assert len(second) == 1, timeline.created
    assert timeline.old_gone_at is not None
    assert timeline.old_gone_at < second[0], (timeline.old_gone_at, second[0])
