"""Watch a running step: its timeout, requests to stop it, its lease on contact with the server,
and the end of its whole process group (R12, R16)."""

from __future__ import annotations

import logging
import os
import signal
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner import step_launch
from runner.executor.publish import Reason, stop_message
from runner.executor.streams import StreamSink

if TYPE_CHECKING:
    from runner.executor.launch import StepProcess

logger = logging.getLogger(__name__)

KILL_GRACE_S = step_launch.KILL_GRACE_S  # between SIGTERM and SIGKILL of the step's group
POLL_S = 0.1  # how often should_stop and the timeout are checked


@dataclass
class Watch:
    """What the executor asks while the step runs: whether to stop it, and until when the
    worker holds a lease on contact with the server."""

    should_stop: Callable[[], str | None]
    contact_until: Callable[[], float]


def supervise(step: StepProcess, timeout_s: float, should_stop: Callable[[], str | None],
              lease: Lease, stream: StreamSink) -> Reason | None:
    """Wait for the step, renewing its lease; stop it on timeout or request and return why,
    else None."""
    deadline = time.monotonic() + timeout_s
    with step.exits() as exited_within:
        while not exited_within(POLL_S):
            lease.renew()
            reason = _stop_reason(should_stop, deadline)
            if reason is not None:
                stream.system(f"{stop_message(reason, timeout_s)}: stopping the step")
                terminate(step)
                return reason
    return None


def _stop_reason(should_stop: Callable[[], str | None], deadline: float) -> Reason | None:
    reason = _requested_stop(should_stop)
    if reason is None and time.monotonic() >= deadline:
        return "timeout"
    return reason


def _requested_stop(should_stop: Callable[[], str | None]) -> Reason | None:
    try:
        wanted = should_stop()
    except Exception:  # a broken callback must not leave the step unsupervised
        logger.exception("should_stop failed; the step keeps running")
        return None
    if wanted is None:
        return None
    return "lost_contact" if wanted == "lost_contact" else "canceled"


def terminate(step: StepProcess) -> None:
    """SIGTERM the step's process group, then SIGKILL it after the grace period."""
    signal_group(step.pid, signal.SIGTERM)
    try:
        step.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    kill_group(step)


def kill_group(step: StepProcess) -> None:
    """SIGKILL the step's process group and wait until its supervisor has ended."""
    signal_group(step.pid, signal.SIGKILL)
    step.wait_killed()


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # The group is gone already.


class Lease:
    """The pipe the step's supervisor reads the worker's lease from (runner.step_launch). Its
    read end goes to the supervisor; closing the write end, which only this process holds,
    tells the supervisor that the worker is gone."""

    def __init__(self, contact_until: Callable[[], float]) -> None:
        self._contact_until = contact_until
        self.read_fd: int | None
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._sent: float | None = None
        self.renew()  # read before anything else: the launch follows it

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handed_over()
        os.close(self._write_fd)

    def renew(self) -> None:
        try:
            until = float(self._contact_until())
        except Exception:  # a broken callback renews nothing: the lease runs out
            logger.exception("contact_until failed; the step's lease is not renewed")
            return
        if until == self._sent:
            return
        try:
            os.write(self._write_fd, struct.pack("!d", until))
            self._sent = until
        except BlockingIOError:
            pass  # a supervisor that reads nothing was stopped with its group; it ends with it
        except BrokenPipeError:
            pass  # the supervisor has ended, and its step with it

    def replace(self) -> None:
        """A new pipe, for a fresh start after a template died while forking: a child it forked
        may still read the old pipe, and would take the lease meant for the new supervisor.
        Closing the old write end tells that child the worker is gone, so it ends."""
        os.close(self._write_fd)
        self.handed_over()
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._sent = None
        self.renew()

    def handed_over(self) -> None:
        """Our copy of the read end is no longer needed: the supervisor has its own."""
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None
