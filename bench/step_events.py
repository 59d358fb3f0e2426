"""Benchmark: what the server spends on each step of a chain (prints figures).

    python bench/step_events.py                      # embedded SQLite
    python bench/step_events.py --postgres postgres://postgres@127.0.0.1:5432/test

No worker and no broker: the script plays the worker's part in process. For a chain of N
steps it posts each step's "started" and "finished" report to the real view through Django's
test client; the jobs are built and dispatched as always, only the broker's send is replaced
by a list. So the engine's server side can be measured and profiled without the noise of
subprocesses. Then the same for a fan-out (one root, N children): its root's "finished"
report dispatches every child in one transaction, so its time is printed on its own.
`--profile` prints the functions that took the most time, `--sql` the queries of one step.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL (its data is kept)")
    parser.add_argument("--chain", type=int, default=50)
    parser.add_argument("--fanout", type=int, default=200)
    parser.add_argument("--profile", nargs="?", const="cumulative",
                        choices=["cumulative", "tottime"],
                        help="print the top functions, by cumulative (default) or own time")
    parser.add_argument("--sql", action="store_true",
                        help="print the queries of one step's started and finished reports")
    return parser.parse_args()


def configure(args: argparse.Namespace) -> None:
    var = ROOT / "bench" / "out" / "events-var"
    shutil.rmtree(var, ignore_errors=True)
    os.environ.update({"PIPELINES_VAR_DIR": str(var),
                       "DJANGO_SETTINGS_MODULE": "pipelines_ui.settings",
                       "ALLOWED_HOSTS": "testserver"})
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    if args.postgres:
        os.environ["DATABASE_URL"] = args.postgres


def chain(n: int, target: str, nonce: str) -> dict:
    nodes, edges = [], []
    for i in range(n):
        inputs = [{"name": "x"}] if i else []
        nodes.append({"id": f"s{i}", "component": "python-script@1", "compute": target,
                      "params": {"code": "pass\n", "nonce": nonce},
                      "ports": {"inputs": inputs, "outputs": [{"name": "out"}]}})
        if i:
            edges.append({"from": f"s{i - 1}.out", "to": f"s{i}.x"})
    return {"parameters": {}, "nodes": nodes, "edges": edges}


def fanout(n: int, target: str, nonce: str) -> dict:
    spec = chain(1, target, nonce)
    spec["nodes"] += [{"id": f"leaf{i}", "component": "python-script@1", "compute": target,
                       "params": {"code": "pass\n", "nonce": nonce},
                       "ports": {"inputs": [{"name": "x"}], "outputs": []}} for i in range(n)]
    spec["edges"] = [{"from": "s0.out", "to": f"leaf{i}.x"} for i in range(n)]
    return spec


class Timings:
    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {}
        self.cpu_ms: dict[str, list[float]] = {}  # steadier than wall time on a busy machine
        self.queries: dict[str, list[int]] = {}
        self.sql: dict[str, list[str]] = {}  # the queries of its tenth call, once warm

    def measure(self, name: str, action, *args):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            started, cpu_started = time.perf_counter(), time.thread_time()
            result = action(*args)
            self.ms.setdefault(name, []).append((time.perf_counter() - started) * 1000)
            self.cpu_ms.setdefault(name, []).append((time.thread_time() - cpu_started) * 1000)
        self.queries.setdefault(name, []).append(len(captured.captured_queries))
        if len(self.queries[name]) == 10:
            self.sql[name] = [query["sql"] for query in captured.captured_queries]
        return result

    def set_apart(self, name: str, new_name: str) -> None:
        """Move the last call measured as `name` to `new_name`, as its only call."""
        self.ms[new_name] = [self.ms[name].pop()]
        self.cpu_ms[new_name] = [self.cpu_ms[name].pop()]
        self.queries[new_name] = [self.queries[name].pop()]

    def print(self) -> None:
        for name, values in self.ms.items():
            if name.startswith("fan-out"):
                continue
            print(f"  {name:<10} median {statistics.median(values):6.1f} ms "
                  f"({statistics.median(self.cpu_ms[name]):5.1f} ms CPU), "
                  f"{statistics.median(self.queries[name]):4.0f} queries")


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_workspace() -> tuple[Any, Any, str]:
    """A new workspace, its admin and the name of its compute target."""
    from django.contrib.auth import get_user_model

    from pipelines_ui.accounts.models import Membership, Workspace
    from pipelines_ui.compute.models import ComputeTarget

    tag = uuid.uuid4().hex[:6]
    workspace = Workspace.objects.create(name=f"bench {tag}", slug=f"bench-{tag}")
    user = get_user_model().objects.create_user(f"bench-{tag}")
    Membership.objects.create(workspace=workspace, user=user, role="admin")
    ComputeTarget.objects.create(workspace=workspace, name=f"bench-{tag}")
    return workspace, user, f"bench-{tag}"


def capture_dispatches() -> list[tuple[int, str]]:
    """Replace the broker's send by a list of the (step id, attempt id) of each job sent."""
    from pipelines_ui.celery import app

    sent: list[tuple[int, str]] = []

    def send_task(name, args, **options):  # the broker's own cost is not the engine's
        sent.append((args[0]["step_run_id"], args[0]["attempt_id"]))

    app.send_task = send_task
    return sent


class Worker:
    """Plays the worker's part in process, posting its reports to the real view."""

    def __init__(self, workspace: Any, user: Any, sent: list[tuple[int, str]]) -> None:
        from django.test import Client

        from pipelines_ui.runs import engine

        self.workspace, self.user, self.sent = workspace, user, sent
        self.engine = engine  # importable only once Django is set up
        self.client = Client()
        self.timings = Timings()

    def post(self, step_id: int, attempt_id: str, event: dict) -> None:
        body = {"attempt_id": attempt_id, "events": [{"seq": 1, "time": time.time(), **event}]}
        response = self.client.post(
            f"/api/worker/steps/{step_id}/events/", body, content_type="application/json",
            headers={"Authorization": f"StepToken {self.engine.step_token(step_id, attempt_id)}"})
        assert response.status_code == 200, response.content

    def play(self, spec: dict, label: str = "") -> None:
        """Submit the pipeline, then claim and finish each job as it is sent."""
        from pipelines_ui.pipelines.models import Pipeline

        pipeline = Pipeline.objects.create(workspace=self.workspace,
                                           name=f"bench {uuid.uuid4().hex}", spec=spec)
        self.timings.measure(f"{label}submit",
                             lambda: self.engine.submit_run(pipeline, user=self.user))
        while self.sent:
            step_id, attempt_id = self.sent.pop(0)
            self.timings.measure(f"{label}started", self.post, step_id, attempt_id, {
                "type": "started", "claim": uuid.uuid4().hex, "worker": "bench", "pid": 1})
            digest = "sha256:" + uuid.uuid4().hex * 2
            dispatches = len(self.sent)
            self.timings.measure(f"{label}finished", self.post, step_id, attempt_id, {
                "type": "finished", "exit_code": 0, "outputs": {"out": {
                    "digest": digest, "uri": f"file:///tmp/{digest}", "size": 1}}})
            if len(self.sent) - dispatches > 1:  # the fan-out's root: it dispatched every child
                self.timings.set_apart(f"{label}finished", f"{label}root")


def print_figures(args: argparse.Namespace, timings: Timings) -> None:
    database = "postgresql" if args.postgres else "sqlite"
    print(f"server side, database={database}; a chain of {args.chain} steps, per step:")
    timings.print()
    total = sum(statistics.median(timings.ms[k]) for k in ("started", "finished"))
    print(f"  total      {total:6.1f} ms a step (finished includes the next step's dispatch)")
    if args.fanout:
        root_ms = timings.ms["fan-out root"][0]
        print(f"a fan-out of {args.fanout}: its root's finished report took {root_ms:.0f} ms "
              f"({root_ms / args.fanout:.1f} ms a child dispatched); a child's reports, median: "
              f"started {statistics.median(timings.ms['fan-out started']):.1f} ms, "
              f"finished {statistics.median(timings.ms['fan-out finished']):.1f} ms")


def print_sql(timings: Timings) -> None:
    for name in ("started", "finished"):
        print(f"\n{name}:")
        for sql in timings.sql.get(name, []):
            print(f"  {sql[:300]}")


def main() -> None:
    args = parse_args()
    configure(args)
    setup_django()
    workspace, user, target = create_workspace()
    worker = Worker(workspace, user, capture_dispatches())
    worker.play(chain(args.chain, target, uuid.uuid4().hex))  # warm-up: imports, caches, queries
    worker.timings = Timings()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    worker.play(chain(args.chain, target, uuid.uuid4().hex))
    if profiler:
        profiler.disable()
    if args.fanout:
        worker.play(fanout(args.fanout, target, uuid.uuid4().hex), label="fan-out ")
    print_figures(args, worker.timings)
    if profiler:
        pstats.Stats(profiler).sort_stats(args.profile).print_stats(45)
    if args.sql:
        print_sql(worker.timings)


if __name__ == "__main__":
    main()
