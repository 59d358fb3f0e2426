"""The fork optimisation: Python interpreters kept to fork steps from (runner.step_launch).

A template runs nothing but Python's own start-up before its steps; this process keeps the
last one, started from the executable of the last step that used it (a worker's target names
one), and replaces it once that executable or the folders on its sys.path have changed.
"""

from __future__ import annotations

import array
import contextlib
import logging
import marshal
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from runner import context, step_launch
from runner.executor.prepare import Prepared, metrics_pipe_env, shared_environment

logger = logging.getLogger(__name__)


def take(python: str) -> Template | None:
    """A template for a step run by `python`: the one kept if it still fits, else a fresh
    one; None if none can start (the step then starts as itself and says why, if it fails)."""
    try:
        return kept.take(python)
    except (OSError, ValueError):
        logger.warning("could not start a template interpreter", exc_info=True)
        return None


@dataclass
class Template:
    """A Python interpreter kept to fork steps from (runner.step_launch)."""

    python: str  # the executable it was started from
    proc: subprocess.Popen[bytes]
    sock: socket.socket  # our end of the socket it listens on
    binary: tuple[int, ...] | None  # that executable's identity, to see it replaced
    folders: list[tuple[str, int]] | None = None  # its sys.path folders' mtimes, once known

    @classmethod
    def start(cls, python: str) -> Template:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(
                [python, step_launch.__file__, str(theirs.fileno())], cwd="/",
                env=shared_environment(python), start_new_session=True,
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(python, proc, ours, _identity(python))

    def fork(self, prepared: Prepared, lease_fd: int) -> Forked | None:
        """Fork the step; None if the template is gone, and then nothing of the step runs."""
        if not self._knows_folders():
            self.stop()
            return None
        (out_r, out_w), (err_r, err_w), (metrics_r, metrics_w), (launch_r, launch_w) = (
            os.pipe() for _ in range(step_launch.FDS - 1))  # and the lease pipe, given
        launch = {"cwd": str(prepared.cwd), "args": prepared.argv[1:],
                  "env": {**prepared.env, **metrics_pipe_env(metrics_w)},
                  "metrics_fd_var": context.METRICS_FD_VAR, "confinement": prepared.confinement}
        try:
            pid = self._fork_child([out_w, err_w, metrics_w, launch_r, lease_fd])
        finally:
            step_launch.close_all((out_w, err_w, metrics_w, launch_r))  # the child has copies
        if pid is None or pid <= 0:  # a child forked all the same finds its launch pipe empty
            step_launch.close_all((launch_w, out_r, err_r, metrics_r))
            self.stop()
            return None
        step_launch.write_launch(launch_w, launch)  # to the child alone: never the template
        return Forked(pid, open(out_r, "rb"), open(err_r, "rb"), metrics_r, self)

    def _knows_folders(self) -> bool:
        """Whether the template's sys.path folders are known, read from it if need be; False
        if it is gone before telling them."""
        if self.folders is None:
            folders = self._receive_bytes()
            if folders is None:
                return False
            self.folders = marshal.loads(folders)
        return True

    def _fork_child(self, fds: list[int]) -> int | None:
        """Hand the template the child's descriptors; the child's pid, minus an errno if it
        could not fork, or None if the template is gone."""
        try:
            self.sock.sendmsg([step_launch.FORK],
                              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            return self.receive_int()
        except OSError:
            return None

    def receive_int(self) -> int | None:
        """The template's next number; None if it is gone."""
        data = self._receive_exactly(step_launch.INT_BYTES)
        return None if data is None else int.from_bytes(data, "big", signed=True)

    def _receive_bytes(self) -> bytes | None:
        size = self.receive_int()
        return None if size is None else self._receive_exactly(size)

    def _receive_exactly(self, size: int) -> bytes | None:
        try:
            return step_launch.read_exactly(self.sock.fileno(), size)
        except (OSError, EOFError):  # a closed socket's fileno() is -1: EBADF
            return None

    def reap(self) -> bool:
        """Let the template reap its step, whose group has been killed; False if it is gone."""
        try:
            self.sock.sendall(step_launch.REAP)
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """End a template no step will use: closing its socket makes it exit."""
        self.sock.close()
        threading.Thread(target=self.proc.wait, daemon=True).start()  # reaped when it exits

    def kill(self) -> None:
        """End a template that does not answer; what waits on its socket then sees it gone."""
        self.proc.kill()

    def usable(self) -> bool:
        """Alive, and started from what a fresh interpreter would start from today."""
        if self.proc.poll() is not None or self.binary != _identity(self.python):
            return False
        return self.folders is None or all(_mtime(folder) == mtime
                                           for folder, mtime in self.folders)


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _identity(path: str) -> tuple[int, ...] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino, found.st_mtime_ns


class Forked:
    """A step forked by a template: what the executor uses of a Popen, and the template to
    give back once the step is over. `returncode` stays None if the template ends before it
    can tell the step's exit status."""

    def __init__(self, pid: int, stdout: IO[bytes], stderr: IO[bytes], metrics_fd: int,
                 template: Template) -> None:
        self.pid, self.stdout, self.stderr, self.metrics_fd = pid, stdout, stderr, metrics_fd
        self.template = template
        self.returncode: int | None = None
        self.exited = threading.Event()
        threading.Thread(target=self._wait_for_status, daemon=True,
                         name=f"step-status-{pid}").start()

    def _wait_for_status(self) -> None:
        self.returncode = self.template.receive_int()
        self.exited.set()

    def wait(self, timeout: float | None = None) -> int | None:
        if not self.exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"step {self.pid}", timeout or 0)
        return self.returncode

    @contextlib.contextmanager
    def exits(self) -> Iterator[Callable[[float], bool]]:
        yield self.exited.wait

    def wait_killed(self) -> None:
        """Wait for a step whose group was sent SIGKILL. A template that does not tell its exit
        status by then (a step stopped it with SIGSTOP, say) is killed: the step is gone
        anyway."""
        try:
            self.wait(step_launch.KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            self.template.kill()
        self.wait()

    def release(self) -> None:
        """Once the step's group is gone: the template reaps it and serves the next step."""
        if self.template.reap():
            kept.keep(self.template)
        else:
            self.template.stop()


class Templates:
    """The template this process forks its next Python step from, started from the executable
    of the last one (a worker's target names one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: Template | None = None

    def take(self, python: str) -> Template:
        with self._lock:
            held, self._kept = self._kept, None
        if held is not None and held.python == python and held.usable():
            return held
        if held is not None:
            held.stop()
        return Template.start(python)

    def keep(self, template: Template) -> None:
        replaced = template
        if template.usable():
            with self._lock:
                replaced, self._kept = self._kept, template
        if replaced is not None:
            replaced.stop()


kept = Templates()
