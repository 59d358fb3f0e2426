"""Run one StepJob in a subprocess and say truthfully how it ended.

The step gets a fresh working directory, its code, its inputs (linked from a local datastore),
empty output folders, its parameters in a JSON file and an environment built from an allowlist
(never the worker's own: S6), and is confined before its code runs: another user, Landlock
(runner.isolation, runner.sandbox; S11). It runs in its own session, so a timeout or cancel
reaches the whole process group, grandchildren included (R12). Its stdout, stderr and metrics
stream to a Sink with declared secrets masked (S7). Outputs are published only when it exits
0 (R13). A supervisor leads that group (runner.step_launch) and stops it when the worker's lease on
contact with the server ends, or the worker dies, even while this process cannot run (R16).

The attempt is claimed (the `claim` callback) before any step code runs. The interpreter's
start-up is most of a short step's cost, so a Python step is forked, once the claim has
succeeded, from a template interpreter this process keeps; the first one starts while the
claim is in flight. Any other command, and a Python step whose own interpreter options or
variables must apply at start-up (PYTHON*, LD_*, locale), starts as itself after the claim;
so does every step in the "spawn" launch mode, which keeps no template (runner.executor.launch).

The modules, in the order a step meets them:

    prepare    the working directory, code, inputs, environment and command
    launch     starting the step under its supervisor, spawned or forked: one way in
    template   the template interpreters Python steps are forked from
    supervise  the timeout, requests to stop, the lease, the end of the process group
    streams    stdout, stderr and metric lines, masked, to the Sink
    publish    the outputs and the StepResult
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

from runner.executor import launch, prepare, publish, streams, supervise
from runner.executor.prepare import SetupError, remove_workdir
from runner.executor.publish import StepResult
from runner.executor.streams import Masker, Sink
from runner.isolation import Isolation
from runner.messages import StepJob

__all__ = ["Sink", "StepResult", "execute", "remove_workdir"]

logger = logging.getLogger(__name__)


def _never() -> str | None:
    return None


def _granted() -> bool:
    return True


def _ignore(pid: int) -> None:
    return None


def _forever() -> float:
    return math.inf


def execute(job: StepJob, sink: Sink, *, workdir_root: Path,
            claim: Callable[[], bool] = _granted,
            should_stop: Callable[[], str | None] = _never,
            on_start: Callable[[int], None] = _ignore,
            contact_until: Callable[[], float] = _forever,
            dispose: Callable[[Path], None] | None = None,
            launch_mode: launch.LaunchMode = "fork",
            isolated: Isolation | None = None) -> StepResult | None:
    """Run one step to its end and return how it ended; never raises for the step's faults.

    `claim` is called once, before any step code runs; when it answers False the step does
    not run and None is returned. A step that could not be prepared is claimed too, so that
    its failure is reported. `should_stop` is polled about every POLL_S seconds:
    "lost_contact" stops the step with that reason, any other non-None value cancels it.
    `contact_until` is polled as often: the time (time.monotonic) until which the step may
    run without more contact with the server; the step's supervisor stops it after that
    whether or not this process can still run. `on_start` receives the pid of the step's
    supervisor, its process group's. The working directory is removed before returning,
    or handed to `dispose` to remove later (the worker does so once it has reported the end:
    it is not on the step's path). `launch_mode` "fork" forks a Python step from a template
    interpreter where it can, "spawn" starts every step as its own command. `isolated`: how
    the step is kept from the worker's state (runner.isolation; S11), None for not at all.
    """
    mask = Masker((job.get("secrets") or {}).values())
    stream = streams.StreamSink(sink, mask)
    claim_once = _Claim(claim)
    workdir: Path | None = None
    try:
        workdir = prepare.make_workdir(Path(workdir_root).absolute(), job)
        prepared = prepare.prepare(job, workdir, isolated)
        return _run(job, prepared, stream, claim_once,
                    supervise.Watch(should_stop, contact_until), on_start, launch_mode)
    except SetupError as exc:
        if not claim_once():
            return None
        stream.system(f"could not run the step: {exc}")
        return publish.failed("error", mask(str(exc)))
    except Exception as exc:  # a bug here must still end in a final state
        logger.exception("executor failed on step %s/%s", job.get("run_id"), job.get("node"))
        if not claim_once():
            return None
        return publish.failed("error", mask(f"{type(exc).__name__}: {exc}"))
    finally:
        stream.close()
        if workdir is not None and os.environ.get(prepare.KEEP_WORKDIR_VAR) != "1":
            (dispose or remove_workdir)(workdir)


class _Claim:
    """Calls the claim callback at most once and remembers its answer."""

    def __init__(self, claim: Callable[[], bool]) -> None:
        self._claim = claim
        self.answer: bool | None = None

    def __call__(self) -> bool:
        if self.answer is None:
            self.answer = bool(self._claim())
        return self.answer


def _run(job: StepJob, prepared: prepare.Prepared, stream: streams.StreamSink, claim: _Claim,
         watch: supervise.Watch, on_start: Callable[[int], None],
         launch_mode: launch.LaunchMode) -> StepResult | None:
    starting = launch.Launch(prepared, launch_mode)  # a template it needs starts during the claim
    claimed = False
    try:
        claimed = claim()
    finally:
        if not claimed:
            starting.abandon()
    if not claimed:
        return None
    with supervise.Lease(watch.contact_until) as lease:
        step = starting.start(lease)
        lease.handed_over()
        return _run_started(job, prepared, stream, step, watch.should_stop, lease, on_start)


def _run_started(job: StepJob, prepared: prepare.Prepared, stream: streams.StreamSink,
                 step: launch.StepProcess, should_stop: Callable[[], str | None],
                 lease: supervise.Lease, on_start: Callable[[int], None]) -> StepResult:
    reader = None
    try:
        reader = streams.start_reader(step, stream)
        on_start(step.pid)
        stop_reason = supervise.supervise(step, job["timeout_s"], should_stop, lease, stream)
    finally:
        # Whatever happened, no process of the step's group outlives it; and only then does
        # the lease pipe close, which would tell its supervisor that the worker died.
        supervise.kill_group(step)
        step.release()
        if reader is not None:
            streams.join_reader(reader, stream)
    if step.returncode is None:
        return publish.failed("error", "the interpreter the step was forked from ended during "
                              "the step, so its exit status is unknown")
    return publish.step_result(job, prepared, step.returncode, stop_reason, stream)
