"""Keeps the processes of `manage.py up` running: starts them, restarts one that dies, stops all.

Each child's output goes to its own file under var/log/; the terminal gets one line per
lifecycle event (started, exited, restarting, given up, stopped) and the children's warnings
and errors. A child that dies is restarted after 1 s, then 2, 4, ... up to 30 s while it keeps
dying; one that dies within FAST_DEATH_S of its start FAST_DEATHS_TO_GIVE_UP times in a row is
left stopped, loudly, and the others keep serving.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from billiard.util import set_pdeathsig

FAST_DEATH_S = 10.0
FAST_DEATHS_TO_GIVE_UP = 5
FIRST_DELAY_S, MAX_DELAY_S = 1.0, 30.0
STOP_GRACE_S = (4.0, 3.0, 2.0)  # per stop stage: Ctrl-C stops everything within 10 s
POLL_S = 0.2

# What a child writes that the terminal should show too; the rest stays in its log.
NOTABLE = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback|Unrecoverable)\b")
# Said at start, not an error: how the compute worker confines its steps (S11).
ANNOUNCED = re.compile(r"\bstep isolation: ")
@dataclass
class Child:
    """One supervised process: how to start it, and what happened to it so far."""

    name: str
    command: list[str]
    env: dict[str, str]
    quiet: re.Pattern | None = None  # notable lines not worth a newcomer's attention
    ready: Callable[[subprocess.Popen], None] | None = None  # waits until it serves
    stop_stage: int = 0  # stopped after those of lower stages: what they need to stop cleanly
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    fast_deaths: int = 0
    delay_s: float = FIRST_DELAY_S
    restart_at: float | None = None
    given_up: bool = False
    restarts: int = 0
    last_error: str = ""
    reader: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, children: list[Child], log_dir: Path, cwd: Path,
                 say: Callable[[str], None]) -> None:
        self.children = children
        self.log_dir = log_dir
        self.cwd = cwd
        self.say = say
        self.stopping = threading.Event()
        log_dir.mkdir(parents=True, exist_ok=True)

    def run(self, on_up: Callable[[], None] = lambda: None) -> None:
        """Start the children, watch them until SIGINT or SIGTERM, then stop them all."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stopping.set())
        try:
            self.start_all()
            on_up()
            while not self.stopping.wait(POLL_S):
                self.watch_once()
        finally:
            self.stop_all()

    def start_all(self) -> None:
        for child in self.children:
            if not self.stopping.is_set():
                self._start(child)

    def watch_once(self) -> None:
        """Restart what died, or note it; start what is due."""
        for child in self.children:
            self._watch(child)

    def _start(self, child: Child) -> None:
        """Start the child and wait until it is ready; a start that fails counts as a death."""
        child.restart_at, child.last_error, child.process = None, "", None
        child.started_at = time.monotonic()
        try:
            child.process = self._spawn(child)
            if child.ready is not None:
                child.ready(child.process)
        except Exception as exc:  # noqa: BLE001 - whatever stops a start, the child is down
            child.last_error = f"could not start: {type(exc).__name__}: {exc}"
            if child.process is not None and child.process.poll() is None:
                _kill_tree(child.process)
            self._plan_restart(child, time.monotonic() - child.started_at)
            return
        self.say(f"[{child.name}] started (pid {child.process.pid})")

    def _spawn(self, child: Child) -> subprocess.Popen:
        log = open(self.log_dir / f"{child.name}.log", "ab", buffering=0)  # noqa: SIM115
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting\n".encode())
        # Its own session: Ctrl-C reaches `up` only, which stops the children in order. The
        # launcher ties it to `up` (no preexec_fn: the output threads make forking unsafe).
        launcher = [sys.executable, "-m", "pipelines_ui.supervisor", str(os.getpid())]
        try:
            process = subprocess.Popen(
                [*launcher, *child.command], env=child.env, cwd=self.cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True)
        except BaseException:
            log.close()
            raise
        child.reader = threading.Thread(target=self._copy_output, args=(child, process, log),
                                        name=f"output-{child.name}", daemon=True)
        child.reader.start()
        return process

    def _copy_output(self, child: Child, process: subprocess.Popen, log: IO[bytes]) -> None:
        """Everything to the child's log; warnings and errors to the terminal as well."""
        with log:
            for raw in process.stdout:
                log.write(raw)
                line = raw.decode(errors="replace").rstrip()
                if not line:
                    continue
                notable = NOTABLE.search(line) and not (child.quiet and child.quiet.search(line))
                if notable:
                    child.last_error = line
                if notable or ANNOUNCED.search(line):
                    self.say(f"[{child.name}] {line}")

    def _watch(self, child: Child) -> None:
        if child.given_up:
            return
        if child.restart_at is not None:
            if time.monotonic() >= child.restart_at:
                child.restarts += 1
                self._start(child)
            return
        if child.process is None or child.process.poll() is None:
            return
        _kill_leftovers(child.process)
        child.reader.join(timeout=1)  # so last_error is the child's last word
        self._plan_restart(child, time.monotonic() - child.started_at)

    def _plan_restart(self, child: Child, lived_s: float) -> None:
        if lived_s >= FAST_DEATH_S:
            child.fast_deaths, child.delay_s = 0, FIRST_DELAY_S
        else:
            child.fast_deaths += 1
        code = child.process.returncode if child.process is not None else None
        how = f"exited with {describe_exit(code)}" if code is not None else "did not start"
        last = f"; last error: {child.last_error}" if child.last_error else ""
        ended = f"[{child.name}] {how} after {lived_s:.0f} s{last}"
        if child.fast_deaths >= FAST_DEATHS_TO_GIVE_UP:
            child.given_up = True
            self.say(f"{ended}\n[{child.name}] ERROR: it died within {FAST_DEATH_S:.0f} s of "
                     f"starting {FAST_DEATHS_TO_GIVE_UP} times in a row; left stopped (see "
                     f"{self.log_dir / (child.name + '.log')}). The other processes keep "
                     "serving; fix the cause and start `make up` again.")
            return
        self.say(f"{ended}; restarting in {child.delay_s:.0f} s")
        child.restart_at = time.monotonic() + child.delay_s
        child.delay_s = min(child.delay_s * 2, MAX_DELAY_S)

    def stop_all(self) -> None:
        """Stop stage by stage (workers, then the web server, then the broker they report to),
        each child of a stage at once."""
        for stage, grace_s in enumerate(STOP_GRACE_S):
            self._stop([child for child in self.children if child.stop_stage == stage], grace_s)

    def _stop(self, children: list[Child], grace_s: float) -> None:
        running = [c for c in children if c.process is not None and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in running:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_tree(child.process)
            if child.reader is not None:
                child.reader.join(timeout=1)
            self.say(f"[{child.name}] stopped")


def _kill_tree(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # its own session: its group is its tree
    process.wait()


def _kill_leftovers(process: subprocess.Popen) -> None:
    """What a dead child forked and left behind (a Celery worker's pool and beat processes)
    would run on beside the restarted one: they go with it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # nothing left


def exec_tied_to(parent: int, command: list[str]) -> None:
    """Become `command`, to be killed when `parent` ends without stopping it (Linux). SIGKILL,
    not SIGTERM: the broker goes at the same moment, and a Celery worker's warm shutdown
    would wait for it forever."""
    try:
        set_pdeathsig(signal.SIGKILL)
    except OSError:
        pass  # elsewhere a child outlives a killed `up`; Ctrl-C still stops them all
    if os.getppid() != parent:  # it ended before the request was made: it would never fire
        sys.exit(f"{command[0]}: not started, its supervisor has ended")
    os.execvp(command[0], command)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


if __name__ == "__main__":
    exec_tied_to(int(sys.argv[1]), sys.argv[2:])
