"""Benchmark: one step logging many metric points, from the step to the REST API (prints figures).

    python bench/metrics.py                 # embedded: SQLite + the embedded Valkey of `make up`
    python bench/metrics.py --redis         # broker and channel layer on Redis (dbs 4 and 5)
    python bench/metrics.py --redis --postgres postgres://postgres@127.0.0.1:5432/test
    python bench/metrics.py --points 10000 --profile-server bench/out/server.prof

It starts the ASGI server and one compute worker as subprocesses (bench/run_engine.py's), then
runs one step that calls `context.log_metric` N times (`--points`, 100,000) and one step that
runs the same loop without logging, and prints:

- the microseconds per point inside the step's logging loop;
- the step's wall time, from its script's first line until after the interpreter's exit
  handlers (a buffered point is written there at the latest), beside the loop without logging;
- how long after that end all N points are stored, and are all in one answer of
  GET /api/runs/{id}/metrics/ (and how long that request itself took);
- the points stored beside N, with the duplicates and the missing counted;
- the CPU seconds the server and the worker (with its step) spent on each point.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import run_engine
from run_engine import CpuMeter, free_port, start_embedded_valkey, wait_for

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
KEY = "loss"

# Runs in the step. The report at exit is registered before the step imports context, so it
# runs after whatever context registers (exit handlers run last-in, first-out).
STEP = """
import atexit, json, time
started = time.perf_counter()
atexit.register(lambda: print(json.dumps(
    {{"wall_s": time.perf_counter() - started, "end": time.time()}}), flush=True))
from runner import context
t0 = time.perf_counter()
for i in range({points}):
    {body}
print(json.dumps({{"loop_s": time.perf_counter() - t0}}), flush=True)
"""
LOGGING = f"context.log_metric({KEY!r}, i * 0.001, step=i)"
NOT_LOGGING = "value = i * 0.001"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", action="store_true", help="use Redis as the broker")
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL (its data is kept)")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--wait", type=float, default=300.0,
                        help="give up on points not stored this many seconds after the step")
    parser.add_argument("--profile-server", default="",
                        help="run the server under cProfile and write its profile to this file")
    return parser.parse_args()


def configure(args: argparse.Namespace, port: int) -> Path:
    """As run_engine's, in a folder and Redis databases of its own: run_engine empties
    bench/out/var, which a bench/run_engine.py running beside this one is using."""
    return run_engine.configure(args, port, folder="metrics-var", redis_dbs=(4, 5))


def step_spec(target: str, points: int, body: str, nonce: str) -> dict:
    code = STEP.format(points=points, body=body)
    return {"parameters": {}, "edges": [], "nodes": [{
        "id": "metrics", "component": "python-script@1", "compute": target,
        "params": {"code": code, "nonce": nonce}, "ports": {"inputs": [], "outputs": []}}]}


def main() -> None:
    args = parse_args()
    port = free_port()
    var = configure(args, port)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from pipelines_ui.accounts.models import ApiToken, Membership, Workspace
    from pipelines_ui.compute.models import ComputeTarget
    from pipelines_ui.compute.services import issue_worker_key

    call_command("migrate", verbosity=0)
    tag = uuid.uuid4().hex[:6]
    workspace = Workspace.objects.create(name=f"bench {tag}", slug=f"bench-{tag}")
    user = get_user_model().objects.create_user(f"bench-{tag}")
    Membership.objects.create(workspace=workspace, user=user, role="admin")
    target = ComputeTarget.objects.create(workspace=workspace, name=f"bench-{tag}")
    worker_key = issue_worker_key(target)
    _, api_key = ApiToken.issue(workspace, user, "bench", ["read"])

    env = dict(os.environ)
    valkey = None if args.redis else start_embedded_valkey(var)
    profile = ["-m", "cProfile", "-o", args.profile_server] if args.profile_server else []
    server = subprocess.Popen([sys.executable, *profile, "-m", "uvicorn",
                               "pipelines_ui.asgi:application", "--port", str(port),
                               "--log-level", "warning"], cwd=ROOT, env=env)
    worker_log = open(OUT / "metrics-worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "runner", "worker", "--target", target.name,
                               "--concurrency", "1", "--loglevel", "INFO"], cwd=ROOT,
                              env={**env, "PIPELINES_WORKER_KEY": worker_key},
                              stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        bench = Bench(args, workspace, user, target.name, f"http://127.0.0.1:{port}", api_key)
        bench.run(100, "warm")  # the worker's first step pays for its interpreter template
        database = "postgresql" if args.postgres else "sqlite"
        print(f"broker={'redis' if args.redis else 'embedded valkey'} database={database} "
              f"points={args.points}")
        bench.measure(CpuMeter(server=server.pid, worker=worker.pid))
    finally:
        worker.terminate()
        server.terminate()
        worker.wait(30)
        server.wait(60)
        if valkey is not None:
            valkey.terminate()
            valkey.wait(30)


class Bench:
    def __init__(self, args, workspace, user, target: str, url: str, api_key: str) -> None:
        self.args, self.workspace, self.user, self.target = args, workspace, user, target
        self.url, self.api_key = url, api_key

    def measure(self, cpu: CpuMeter) -> None:
        n = self.args.points
        bare = self.step_figures(self.run(n, "bare", body=NOT_LOGGING)[0])
        cpu.since_last()
        run, polls = self.run(n, "logging")
        spent = cpu.since_last()
        logged = self.step_figures(run)
        end = logged["end"]
        print(f"inside the step: {logged['loop_s'] / n * 1e6:.2f} us a point in the logging "
              f"loop ({logged['loop_s']:.3f} s; the loop without logging "
              f"{bare['loop_s']:.3f} s)")
        print(f"step wall time: {logged['wall_s']:.3f} s logging, {bare['wall_s']:.3f} s "
              f"without -> {(logged['wall_s'] - bare['wall_s']) / n * 1e6:.2f} us a point")
        stored_at = next((at for at, count in polls if count >= n), None)
        print("all points stored: " + (f"{stored_at - end:+.3f} s after the step's end"
                                       if stored_at else f"not within {self.args.wait} s"))
        asked, answered, steps = self.api_points(run)
        print(f"through the REST API: all there at {answered - end:+.3f} s after the step's end "
              f"(one GET of {asked - end:+.3f} s taking {answered - asked:.3f} s)")
        unique = len(set(steps))
        print(f"stored {len(steps)} of {n}: {len(steps) - unique} duplicates, "
              f"{len(set(range(n)) - set(steps))} missing")
        print("CPU a point: " + ", ".join(f"{who} {seconds / n * 1e6:.1f} us"
                                          for who, seconds in spent.items())
              + " (the worker's includes its step)")

    def run(self, points: int, name: str, body: str = LOGGING):
        """Runs one step; returns the run and (time, points stored) polled meanwhile."""
        from pipelines_ui.pipelines.models import Pipeline
        from pipelines_ui.runs.engine import submit_run
        from pipelines_ui.runs.models import MetricPoint

        spec = step_spec(self.target, points, body, uuid.uuid4().hex)
        pipeline = Pipeline.objects.create(workspace=self.workspace, name=name, spec=spec)
        run = submit_run(pipeline, user=self.user)
        polls: list[tuple[float, int]] = []
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            count = MetricPoint.objects.filter(run=run).count()
            polls.append((time.time(), count))
            run.refresh_from_db()
            if run.is_finished and deadline is None:
                deadline = time.monotonic() + self.args.wait
            if run.is_finished and (count >= points or body != LOGGING):
                break
            time.sleep(0.01)
        if run.status != "succeeded":
            step = run.steps.get()
            raise SystemExit(f"run {run.pk} ended {run.status}: {step.error}\n{step.traceback}")
        return run, polls

    def step_figures(self, run) -> dict[str, float]:
        """What the step printed: its loop's and its whole time, and when it ended."""
        from pipelines_ui.runs.models import LogLine

        figures: dict[str, float] = {}
        for text in LogLine.objects.filter(step_run__run=run, stream="stdout").values_list(
                "text", flat=True):
            figures.update(json.loads(text))
        return figures

    def api_points(self, run) -> tuple[float, float, list[int]]:
        """One GET of the run's metrics: when it was sent, answered, and the steps it holds."""
        import httpx

        asked = time.time()
        response = httpx.get(f"{self.url}/api/runs/{run.pk}/metrics/", params={"key": KEY},
                             headers={"Authorization": f"Token {self.api_key}"}, timeout=120)
        answered = time.time()
        response.raise_for_status()
        steps = [s for series in response.json()["series"] for s in series["steps"]]
        return asked, answered, steps


if __name__ == "__main__":
    main()
