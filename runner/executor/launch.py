"""Start a step under its supervisor (runner.step_launch), in a session of its own.

Two launch modes. "spawn", the baseline, starts the step's command as it is: `python -I -S
step_launch.py --command ...` starts as the supervisor, forks the step and executes the
command in it. "fork", the default, is an optimisation: since the interpreter's start-up is
most of a short step's cost, a Python step that can be forked (runner.executor.prepare's
`forkable`) is forked from a template interpreter that this process keeps
(runner.executor.template); any other step is spawned all the same. Launch is the one way in,
whichever it is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, TYPE_CHECKING, Literal, Protocol

from runner import context, step_launch
from runner.executor import template
from runner.executor.prepare import Prepared, SetupError, metrics_pipe_env

if TYPE_CHECKING:
    from runner.executor.supervise import Lease

LaunchMode = Literal["fork", "spawn"]
LAUNCH_MODES: tuple[LaunchMode, ...] = ("fork", "spawn")


class StepProcess(Protocol):
    """The step's supervisor, the leader of its process group, as the executor sees it.
    `returncode` is the step's own exit status once known: minus the signal that ended it."""

    pid: int
    stdout: IO[bytes]
    stderr: IO[bytes]
    metrics_fd: int  # our end of the step's metrics pipe

    @property
    def returncode(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status; subprocess.TimeoutExpired if it has not come within `timeout`."""

    def exits(self) -> AbstractContextManager[Callable[[float], bool]]:
        """A wait of at most the given seconds that answers whether the step has exited, the
        moment it has."""

    def wait_killed(self) -> None:
        """Wait for the end of a step whose process group was sent SIGKILL."""

    def release(self) -> None:
        """Once the step's group is gone: give back what launched it."""


class Launch:
    """How one step starts. In fork mode a step that can be forked takes a template at once,
    so that one that has to start does so while the claim is in flight; the step itself starts
    only once `start` is called, after the claim."""

    def __init__(self, prepared: Prepared, mode: LaunchMode) -> None:
        if mode not in LAUNCH_MODES:
            raise ValueError(f"launch mode {mode!r} is not one of {', '.join(LAUNCH_MODES)}")
        self._prepared = prepared
        forks = mode == "fork" and prepared.forkable
        self._template = template.take(prepared.argv[0]) if forks else None

    def start(self, lease: Lease) -> StepProcess:
        """Start the step, handing its supervisor the lease pipe's read end; SetupError if it
        cannot start."""
        if self._template is not None:
            forked = self._template.fork(self._prepared, lease.read_fd)
            if forked is not None:
                return forked
            # A template that is gone forked nothing that will run: the claim holds for this.
            lease.replace()
        return spawn(self._prepared, lease.read_fd)

    def abandon(self) -> None:
        """The step will not start (its claim was refused): a template goes back unused."""
        if self._template is not None:
            template.kept.keep(self._template)


def spawn(prepared: Prepared, lease_fd: int) -> Spawned:
    """Start the step's command as it is, under a supervisor in a session of its own
    (runner.step_launch), with a metrics pipe."""
    read_fd, write_fd = os.pipe()
    (launch_r, launch_w), (error_r, error_w) = os.pipe(), os.pipe()
    env = {**prepared.env, **metrics_pipe_env(write_fd), context.METRICS_FD_VAR: str(write_fd)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", step_launch.__file__, step_launch.COMMAND,
             str(lease_fd), str(launch_r), str(error_w), str(os.getpid())],
            cwd="/", env={}, start_new_session=True,
            pass_fds=(write_fd, lease_fd, launch_r, error_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except BaseException as exc:
        step_launch.close_all((read_fd, launch_w, error_r))
        if isinstance(exc, (OSError, ValueError)):
            raise SetupError(f"cannot start the step's supervisor: {exc}") from exc
        raise
    finally:
        # The step holds its own copies; EOF comes when it (and its kin) exit.
        step_launch.close_all((write_fd, launch_r, error_w))
    step_launch.write_launch(launch_w, {"cwd": str(prepared.cwd), "args": prepared.argv,
                                        "env": env, "confinement": prepared.confinement})
    spawned = Spawned(proc, read_fd)
    spawned.raise_if_not_started(error_r, prepared.argv[0])
    return spawned


class Spawned:
    """A step started as its own command: its supervisor's Popen."""

    def __init__(self, proc: subprocess.Popen[bytes], metrics_fd: int) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.proc, self.pid, self.metrics_fd = proc, proc.pid, metrics_fd
        self.stdout, self.stderr = proc.stdout, proc.stderr

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        return self.proc.wait(timeout)

    def raise_if_not_started(self, error_fd: int, program: str) -> None:
        """Wait until the step has executed its command; SetupError if it could not."""
        with open(error_fd, "rb") as errors:
            reported = errors.read()
        if not reported:
            return
        self.proc.wait()
        step_launch.close_all((self.metrics_fd,))
        self.stdout.close()
        self.stderr.close()
        number = int(reported)
        if number == errno.ENOENT:
            raise SetupError(f"command not found: {program}")
        raise SetupError(f"cannot start {program}: "
                         f"{OSError(number, os.strerror(number), program)}")

    @contextlib.contextmanager
    def exits(self) -> Iterator[Callable[[float], bool]]:
        """A wait of at most the given seconds that returns whether the step exited, the moment
        it does: Popen.wait(timeout) polls with sleeps of up to 50 ms, most of a short step's
        time."""
        try:
            pidfd = os.pidfd_open(self.pid)  # readable once the process exits
        except (AttributeError, OSError):  # before Linux 5.3, or refused by a seccomp profile
            exited = threading.Event()
            threading.Thread(target=lambda: (self.proc.wait(), exited.set()), name="step-wait",
                             daemon=True).start()
            yield exited.wait
            return
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        try:
            yield lambda timeout: bool(poller.poll(timeout * 1000)) and self.proc.poll() is not None
        finally:
            os.close(pidfd)

    def wait_killed(self) -> None:
        self.proc.wait()

    def release(self) -> None:
        """Nothing to hand back: the step started as itself."""
