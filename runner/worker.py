"""The compute worker: runs StepJobs from its target's queue and announces itself.

Each step runs in the executor's subprocess; this module claims the attempt, wires the
executor to the reporter and reports the end. A daemon thread in the worker's main process
posts a heartbeat (hostname, target, slots, busy, the hardware it sees) to the server.

Settings, from the environment: PIPELINES_WORKER_HEARTBEAT_S, PIPELINES_WORK_DIR,
PIPELINES_STEP_LAUNCH (`step_launch_mode`, read once, as the worker starts) and
PIPELINES_STEP_ISOLATION / PIPELINES_STEP_USER (runner.isolation: checked as the worker
starts, logged, and announced in each heartbeat).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any, cast

import httpx
import psutil
from celery import signals
from celery.worker import state as worker_state

from runner import isolation, secrets
from runner.broker import var_dir
from runner.celery_app import app
from runner.executor import StepResult, execute, remove_workdir
from runner.executor.launch import LAUNCH_MODES, LaunchMode
from runner.messages import MessageError, StepJob, parse_step_job
from runner.reporter import StepReporter, worker_name

log = logging.getLogger(__name__)

WORKER_HEARTBEAT_S = float(os.environ.get("PIPELINES_WORKER_HEARTBEAT_S", "5"))
STEP_LAUNCH_VAR = "PIPELINES_STEP_LAUNCH"


def step_launch_mode(value: str | None) -> LaunchMode:
    """How the worker starts its steps, from PIPELINES_STEP_LAUNCH: "fork" (the default) forks
    each Python step from an interpreter kept for the purpose, "spawn" starts every step as a
    fresh process and keeps none. Anything else stops the worker as it starts."""
    if not value:
        return "fork"
    if value not in LAUNCH_MODES:
        raise ValueError(f"{STEP_LAUNCH_VAR}={value!r}: it must be one of "
                         f"{', '.join(LAUNCH_MODES)} (the default is fork)")
    return cast(LaunchMode, value)


STEP_LAUNCH = step_launch_mode(os.environ.get(STEP_LAUNCH_VAR))


def work_root() -> Path:
    """Where step folders go: traversable (0711), never listable, by a step user."""
    configured = os.environ.get("PIPELINES_WORK_DIR")
    root = Path(configured) if configured else isolation.default_work_root(var_dir())
    return isolation.prepare_work_root(root.absolute())


@cache
def step_isolation() -> isolation.Isolation:
    """How this worker's steps are kept from its state and the server's (S11): checked once,
    in the worker's main process before its pool starts (its log set up), so every slot
    inherits it."""
    return isolation.detect(sys.executable, work_root(), var_dir())


@signals.celeryd_after_setup.connect
def _report_isolation(**kwargs) -> None:
    found = step_isolation()
    (log.info if found.level != "none" else log.warning)("step isolation: %s: %s",
                                                         found.level, found.describe())


@app.task(name="runner.run_step", ignore_result=True)
def run_step(job: dict[str, Any]) -> str:
    """Run one step attempt. Returns what happened, for the worker's own log."""
    try:
        step_job = parse_step_job(job)
    except MessageError as exc:
        log.error("dropping a malformed StepJob: %s", exc)
        return "malformed"
    return run_job(step_job)


# A slot runs at most this many steps handed over in a row, then takes its next job from the
# queue again, where other runs' steps may be waiting.
MAX_HANDED_OVER = 50


def run_job(job: StepJob, reporter: StepReporter | None = None) -> str:
    """Run the attempt, then each step the server hands over in answer to a final report
    (pipelines_ui/runs/engine/handover.py). Returns how the first attempt ended."""
    reporter = reporter or StepReporter(job)
    outcome = _run_attempt(job, reporter, may_hand_over=MAX_HANDED_OVER > 0)
    for handed in range(1, MAX_HANDED_OVER + 1):
        if reporter.handed_over is None:
            break
        try:
            job = parse_step_job(reporter.handed_over)
        except MessageError as exc:  # claimed for us: the reconciler retries it when lost
            log.error("dropping a malformed StepJob handed over: %s", exc)
            break
        reporter = StepReporter(job, claimed_as=reporter.hand_over_claim)
        _run_attempt(job, reporter, may_hand_over=handed < MAX_HANDED_OVER)
    return outcome


def _run_attempt(job: StepJob, reporter: StepReporter, may_hand_over: bool) -> str:
    started = time.perf_counter()
    leftovers: list[Path] = []
    # The executor claims the attempt (R3: another delivery may have it, or it may be over)
    # while a Python step's interpreter starts.
    result = execute(job, reporter, workdir_root=work_root(), claim=reporter.claim,
                     should_stop=reporter.should_stop, contact_until=reporter.contact_until,
                     dispose=leftovers.append, launch_mode=STEP_LAUNCH,
                     isolated=step_isolation())
    executed = time.perf_counter()
    if result is not None:
        # A worker that is shutting down takes nothing more.
        hand_over = may_hand_over and not (worker_state.should_stop
                                           or worker_state.should_terminate)
        reporter.finish(_failure(result), result.outputs, hand_over=hand_over)
    for workdir in leftovers:  # after the report, and off the path to the next step
        _sweeper.remove(workdir)
    outcome = result.status if result is not None else "not claimed"
    log.info("step run %s attempt %s %s: claim and run %.0f ms, report %.0f ms",
             job["step_run_id"], job["attempt"], outcome, (executed - started) * 1000,
             (time.perf_counter() - executed) * 1000)
    return outcome


class _Sweeper:
    """Removes the working folders of ended steps on a thread of its own, so that a step
    handed over in the answer to the last report starts without waiting for it."""

    def __init__(self) -> None:
        self._folders: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def remove(self, folder: Path) -> None:
        if self._thread is None or not self._thread.is_alive():  # none in a forked child
            self._thread = threading.Thread(target=self._run, name="workdir-sweeper",
                                            daemon=True)
            self._thread.start()
        self._folders.put(folder)

    def _run(self) -> None:
        while True:
            remove_workdir(self._folders.get())


_sweeper = _Sweeper()


def _failure(result: StepResult) -> dict[str, Any] | None:
    if result.status == "succeeded":
        return None
    return {
        "reason": result.reason or "error",
        "message": result.message,
        "exit_code": result.exit_code,
        "traceback": result.traceback,
    }


# --- the worker announces itself ---------------------------------------------------------


def seen_resources() -> dict[str, Any]:
    """What this machine offers: CPUs, memory and, where nvidia-smi answers, GPUs."""
    return {
        "cpus": psutil.cpu_count() or 1,
        "memory_bytes": psutil.virtual_memory().total,
        "gpus": _nvidia_gpus(),
    }


def _nvidia_gpus() -> list[dict[str, Any]]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, memory_mib = line.rpartition(",")
        gpus.append({"name": name.strip(), "memory_bytes": int(memory_mib.strip()) * 2**20})
    return gpus


class WorkerAnnouncer:
    """Posts the worker's heartbeat to the server until the worker stops."""

    def __init__(self, server_url: str, key: str, target: str, slots: int) -> None:
        self.url = f"{server_url.rstrip('/')}/api/worker/heartbeat/"
        self.headers = {"Authorization": f"WorkerKey {key}"}
        self.target = target
        self.slots = slots
        self.resources = {**seen_resources(), "isolation": step_isolation().report()}
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=5.0)

    def beat(self, stopping: bool = False) -> None:
        body = {
            "hostname": worker_name(), "target": self.target, "slots": self.slots,
            "busy": len(worker_state.active_requests), "resources": self.resources,
            "stopping": stopping,
        }
        try:
            response = self._client.post(self.url, json=body, headers=self.headers)
            if response.status_code >= 400:
                log.warning("heartbeat refused (%s): %s", response.status_code, response.text)
        except httpx.HTTPError as exc:
            log.warning("heartbeat failed: %s", exc)

    def run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(WORKER_HEARTBEAT_S)

    def stop(self) -> None:
        self._stop.set()
        self.beat(stopping=True)


_announcer: WorkerAnnouncer | None = None


@signals.worker_ready.connect
def _start_announcing(sender=None, **kwargs) -> None:
    global _announcer
    target = os.environ.get("PIPELINES_TARGET")
    server, key = os.environ.get("PIPELINES_SERVER_URL"), secrets.get("PIPELINES_WORKER_KEY")
    if not (target and server and key):
        log.warning("not announcing this worker: set PIPELINES_TARGET, PIPELINES_SERVER_URL "
                    "and PIPELINES_WORKER_KEY")
        return
    controller = getattr(sender, "controller", sender)
    slots = getattr(controller, "concurrency", None) or 1
    _announcer = WorkerAnnouncer(server, key, target, slots)
    threading.Thread(target=_announcer.run, name="worker-heartbeat", daemon=True).start()
    log.info("announcing worker for target %s: %s", target, json.dumps(_announcer.resources))


@signals.worker_shutdown.connect
def _stop_announcing(**kwargs) -> None:
    if _announcer is not None:
        _announcer.stop()
