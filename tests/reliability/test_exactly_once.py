"""R8: every log line and metric point that reached the server is stored exactly once.

The worker reports through a proxy that sends every request to the server twice and, for a
few seconds mid-run, drops connections instead of answering. A step buffers its points
(runner.context): one that returns or raises loses none of them, and one killed by SIGKILL
loses at most those it had not flushed, storing the others once.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.runs.models import LogLine, MetricPoint
from runner.executor.launch import LAUNCH_MODES
from tests.integration.runs.specs import script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(240)

LINES, POINTS = 10_000, 5_000
CHATTY = f"""
    import time
    from runner import context
    for i in range({LINES}):
        print(f'line {{i}}')
        if i < {POINTS}:
            context.log_metric('value', i, step=i)
        if i % 1000 == 0:
            time.sleep(0.5)
    """


# Not a multiple of the step's batch (1000 points): the last 500 are still buffered at its end.
BURST = 20_500
ENDINGS = {
    "returns": "",
    "raises": "raise RuntimeError('after the points')",
    "exits": "sys.exit(3)",
}
BURST_THEN = """
    import sys
    from runner import context
    for i in range({points}):
        context.log_metric('value', i, step=i)
    {ending}
    """
# What it flushed must be stored once; the 500 after it may be lost, or stored in part (the
# step's timer may write some before the kill), but only as the next ones in order.
FLUSHED = 5_000
KILLED_AFTER_FLUSH = f"""
    import os, signal
    from runner import context
    for i in range({FLUSHED}):
        context.log_metric('value', i, step=i)
    context.flush_metrics()
    for i in range({FLUSHED}, {FLUSHED + 500}):
        context.log_metric('value', i, step=i)
    os.kill(os.getpid(), signal.SIGKILL)
    """


class ReplayingProxy(ThreadingHTTPServer):
    """Forwards each POST to the server twice; drops connections while `down` is set."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.down = threading.Event()
        self.client = httpx.Client(timeout=30)
        self.forwarded = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.down.is_set():
            self.close_connection = True
            self.connection.close()  # the worker sees a broken connection
            return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        response = None
        for _ in range(2):  # every batch arrives twice
            response = self.server.client.post(self.server.upstream + self.path,
                                               content=body, headers=headers)
        self.server.forwarded += 1
        self.send_response(response.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    def log_message(self, *args) -> None:
        pass


def test_replayed_and_interrupted_reports_store_each_line_and_point_once(engine, workspace,
                                                                         owner, settings):
    proxy = ReplayingProxy(engine.url)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    settings.PIPELINES_SERVER_URL = proxy.url  # jobs tell workers where to report
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url)
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("chatty", CHATTY, target=name, allow_reuse=False)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="chatty", spec=spec)
        run = submit_run(pipeline, user=owner)
        step = run.steps.get()
        wait_until(lambda: LogLine.objects.filter(step_run=step).count() > 1000, timeout=60)
        proxy.down.set()
        time.sleep(5)  # the outage itself, not a wait for a result
        proxy.down.clear()

        def done():
            run.refresh_from_db()
            return run.is_finished

        wait_until(done, timeout=120, interval=0.5)
    finally:
        worker.stop()
        proxy.shutdown()
    assert run.status == "succeeded", run.steps.get().error
    texts = list(LogLine.objects.filter(step_run=step, stream="stdout")
                 .order_by("index").values_list("text", flat=True))
    assert texts == [f"line {i}" for i in range(LINES)]
    values = list(MetricPoint.objects.filter(step_run=step).order_by("index")
                  .values_list("value", flat=True))
    assert values == [float(i) for i in range(POINTS)]
    assert proxy.forwarded > 2


def run_through_a_replaying_proxy(engine, workspace, owner, settings, code: str,
                                  launch_mode: str):
    """Runs one step whose reports all arrive twice; returns the finished run."""
    proxy = ReplayingProxy(engine.url)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    settings.PIPELINES_SERVER_URL = proxy.url
    name = unique_target()
    ComputeTarget.objects.create(workspace=workspace, name=name)
    worker = WorkerProcess(name, engine.url, extra_env={"PIPELINES_STEP_LAUNCH": launch_mode})
    try:
        spec = {"parameters": {}, "edges": [], "nodes": [
            script("burst", code, target=name, allow_reuse=False)]}
        pipeline = Pipeline.objects.create(workspace=workspace, name="burst", spec=spec)
        run = submit_run(pipeline, user=owner)

        def done():
            run.refresh_from_db()
            return run.is_finished

        wait_until(done, timeout=120, interval=0.5)
    finally:
        worker.stop()
        proxy.shutdown()
    return run


def stored_values(run) -> list[float]:
    return list(MetricPoint.objects.filter(step_run__run=run).order_by("index")
                .values_list("value", flat=True))


@pytest.mark.parametrize("launch_mode", LAUNCH_MODES)
@pytest.mark.parametrize("ending", ENDINGS)
def test_a_step_that_returns_raises_or_exits_loses_no_buffered_point(
        engine, workspace, owner, settings, launch_mode, ending):
    code = BURST_THEN.format(points=BURST, ending=ENDINGS[ending])
    run = run_through_a_replaying_proxy(engine, workspace, owner, settings, code, launch_mode)
    assert run.status == ("succeeded" if ending == "returns" else "failed")
    assert stored_values(run) == [float(i) for i in range(BURST)]


@pytest.mark.parametrize("launch_mode", LAUNCH_MODES)
def test_a_step_killed_after_a_flush_stores_what_it_flushed_once(
        engine, workspace, owner, settings, launch_mode):
    run = run_through_a_replaying_proxy(engine, workspace, owner, settings,
                                        KILLED_AFTER_FLUSH, launch_mode)
    step = run.steps.get()
    assert step.state == "failed" and "signal 9" in step.error, step.error
    values = stored_values(run)
    assert FLUSHED <= len(values) <= FLUSHED + 500
    assert values == [float(i) for i in range(len(values))]  # in order, none twice
