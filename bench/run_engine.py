"""Benchmark: per-step overhead of the run engine beside bare subprocesses (prints figures).

    python bench/run_engine.py            # embedded: SQLite + the embedded Valkey of `make up`
    python bench/run_engine.py --redis    # broker and channel layer on Redis (dbs 2 and 3)
    python bench/run_engine.py --redis --postgres postgres://postgres@127.0.0.1:5432/test

It starts the ASGI server and one compute worker (2 slots) as subprocesses, then times:
a chain of 50 steps that do nothing, a fan-out of 200 (one root, 200 children), and the same
chain again when every step is reused; and, as the baseline, the same number of bare
`python -c pass` subprocesses (sequential for the chain, two at a time for the fan-out).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLOTS = 2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", action="store_true", help="use Redis as the broker")
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL (its data is kept)")
    parser.add_argument("--chain", type=int, default=50)
    parser.add_argument("--fanout", type=int, default=200)
    return parser.parse_args()


def configure(args: argparse.Namespace, port: int, folder: str = "var",
              redis_dbs: tuple[int, int] = (2, 3)) -> Path:
    """The environment of the server, worker and this process; an empty bench/out/<folder>.
    Benchmarks that may run side by side each take a folder and Redis databases of their own."""
    var = ROOT / "bench" / "out" / folder
    shutil.rmtree(var, ignore_errors=True)
    os.environ.update({
        "PIPELINES_VAR_DIR": str(var),
        "DJANGO_SETTINGS_MODULE": "pipelines_ui.settings",
        "PIPELINES_SERVER_URL": f"http://127.0.0.1:{port}",
        "STEP_HEARTBEAT_S": "2",
    })
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    if args.redis:  # as a deployment on Redis has it: the run page's events go through it too
        os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:6379/{redis_dbs[0]}"
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{redis_dbs[1]}"
    if args.postgres:
        os.environ["DATABASE_URL"] = args.postgres
    return var


def start_embedded_valkey(var: Path) -> subprocess.Popen:
    from runner.broker import start_embedded_valkey

    return start_embedded_valkey(var, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, limit_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def noop(node_id: str, target: str, inputs=(), outputs=("out",), nonce: str = "") -> dict:
    return {"id": node_id, "component": "python-script@1", "compute": target,
            "params": {"code": "pass\n", "nonce": nonce},
            "ports": {"inputs": [{"name": n} for n in inputs],
                      "outputs": [{"name": n} for n in outputs]}}


def chain(n: int, target: str, nonce: str) -> dict:
    nodes = [noop("s0", target, nonce=nonce)]
    edges = []
    for i in range(1, n):
        nodes.append(noop(f"s{i}", target, inputs=["x"], nonce=nonce))
        edges.append({"from": f"s{i - 1}.out", "to": f"s{i}.x"})
    return {"parameters": {}, "nodes": nodes, "edges": edges}


def fanout(n: int, target: str, nonce: str) -> dict:
    nodes = [noop("root", target, nonce=nonce)]
    nodes += [noop(f"leaf{i}", target, inputs=["x"], outputs=(), nonce=f"{nonce}-{i}")
              for i in range(n)]
    edges = [{"from": "root.out", "to": f"leaf{i}.x"} for i in range(n)]
    return {"parameters": {}, "nodes": nodes, "edges": edges}


def timed_run(pipeline, user) -> tuple[float, float, object]:
    """Submit a run and wait for its end: wall seconds, and the CPU seconds this process spent
    submitting it (all of a fully reused run's server work happens there)."""
    from pipelines_ui.runs.engine import submit_run

    started, cpu_started = time.perf_counter(), time.process_time()
    run = submit_run(pipeline, user=user)
    submit_cpu = time.process_time() - cpu_started
    while not run.is_finished:
        time.sleep(0.02)
        run.refresh_from_db()
    elapsed = time.perf_counter() - started
    if run.status != "succeeded":
        failed = [f"{s.node} {s.state}: {s.error}\n{s.traceback}" for s in run.steps.all()
                  if s.state not in ("succeeded", "reused")]
        raise SystemExit(f"run {run.pk} ended {run.status}:\n" + "\n".join(failed[:5]))
    return elapsed, submit_cpu, run


def bare(n: int, parallel: int) -> float:
    def one(_):
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    port = free_port()
    var = configure(args, port)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from pipelines_ui.accounts.models import Membership, Workspace
    from pipelines_ui.compute.models import ComputeTarget
    from pipelines_ui.compute.services import issue_worker_key
    from pipelines_ui.pipelines.services import create_pipeline

    call_command("migrate", verbosity=0)
    tag = uuid.uuid4().hex[:6]
    workspace = Workspace.objects.create(name=f"bench {tag}", slug=f"bench-{tag}")
    user = get_user_model().objects.create_user(f"bench-{tag}")
    Membership.objects.create(workspace=workspace, user=user, role="admin")
    target = ComputeTarget.objects.create(workspace=workspace, name=f"bench-{tag}")
    key = issue_worker_key(target)

    env = dict(os.environ)
    valkey = None if args.redis else start_embedded_valkey(var)
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "pipelines_ui.asgi:application",
                               "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    worker_log = open(ROOT / "bench" / "out" / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "runner", "worker", "--target", target.name,
                               "--concurrency", str(SLOTS), "--loglevel", "INFO"], cwd=ROOT,
                              env={**env, "PIPELINES_WORKER_KEY": key},
                              stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        warm = create_pipeline(workspace, name="warm-up", spec=chain(2, target.name, "warm"))
        timed_run(warm, user)

        broker = layer = "redis" if args.redis else "embedded valkey"
        database = "postgresql" if args.postgres else "sqlite"
        print(f"broker={broker} channel layer={layer} database={database} worker slots={SLOTS}")
        cpu = CpuMeter(server=server.pid, worker=worker.pid)
        report(f"chain of {args.chain}", args.chain, workspace, user,
               chain(args.chain, target.name, tag), bare(args.chain, 1), 1, cpu)
        report(f"fan-out of {args.fanout}", args.fanout + 1, workspace, user,
               fanout(args.fanout, target.name, tag), bare(args.fanout + 1, SLOTS), SLOTS, cpu)
    finally:
        worker.terminate()
        server.terminate()
        worker.wait(30)
        server.wait(30)
        if valkey is not None:
            valkey.terminate()
            valkey.wait(30)


class CpuMeter:
    """CPU seconds (user + system) spent by each process tree since the last reading; a
    tree's ended children count once they have been waited for, as the steps are."""

    def __init__(self, **roots: int) -> None:
        self.roots = roots
        self.last = self.totals()

    def totals(self) -> dict[str, float]:
        import psutil

        totals = {}
        for name, pid in self.roots.items():
            root = psutil.Process(pid)
            total = 0.0
            for process in (root, *root.children(recursive=True)):
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += sum(times[:4])  # user, system and those of waited-for children
            totals[name] = total
        return totals

    def since_last(self) -> dict[str, float]:
        now = self.totals()
        spent = {name: now[name] - self.last[name] for name in now}
        self.last = now
        return spent


def report(name: str, steps: int, workspace, user, spec: dict, baseline_s: float,
           parallel: int, cpu: CpuMeter) -> None:
    """Print the run's time a step as a ratio to a bare interpreter start measured in the same
    run (run `parallel` at a time, as the worker's slots run steps), then the reused rerun."""
    from pipelines_ui.pipelines.services import create_pipeline

    pipeline = create_pipeline(workspace, name=name, spec=spec)
    cpu.since_last()
    engine_s, _, run = timed_run(pipeline, user)
    spent = cpu.since_last()
    reused_s, reused_cpu_s, again = timed_run(pipeline, user)
    assert {s.state for s in again.steps.all()} == {"reused"}
    bare_ms = baseline_s / steps * 1000
    engine_ms = engine_s / steps * 1000
    print(f"{name}: {engine_ms:.1f} ms a step through the engine, {bare_ms:.1f} ms a bare "
          f"interpreter start ({parallel} at a time) -> {engine_ms / bare_ms:.2f}x; "
          f"total {engine_s:.2f} s")
    print("  CPU a step: " + ", ".join(f"{who} {seconds / steps * 1000:.1f} ms"
                                      for who, seconds in spent.items())
          + " (the worker's includes its steps)")
    print(f"  fully reused rerun: {reused_s * 1000:.0f} ms, of which {reused_cpu_s * 1000:.0f} ms "
          "of server CPU (submitting and reusing every step)")


if __name__ == "__main__":
    main()
