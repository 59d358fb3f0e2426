"""Keeps the processes of `manage.py up` running: starts them, restarts one that dies, stops all.

Each child's output goes to its own file under var/log/; the terminal gets one line per
lifecycle event (started, exited, restarting, given up, stopped) and the children's warnings
and errors. A child that dies is restarted after 1 s, then 2, 4, ... up to 30 s while it keeps
dying; one that dies within FAST_DEATH_S of its start FAST_DEATHS_TO_GIVE_UP times in a row is
left stopped, loudly, and the others keep serving.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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

FAST_DEATH_S = 10.0
FAST_DEATHS_TO_GIVE_UP = 5
FIRST_DELAY_S, MAX_DELAY_S = 1.0, 30.0
STOP_GRACE_S = (4.0, 3.0, 2.0)  # per stop stage: Ctrl-C stops everything within 10 s
POLL_S = 0.2

# What a child writes that the terminal should show too; the rest stays in its log.
NOTABLE = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback|Unrecoverable)\b")
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" \
    else None


def _die_with_parent() -> None:
    """In the child before exec: end when `up` ends, even if `up` is killed with SIGKILL."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


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

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def run(self) -> None:
        """Watch the children until SIGINT or SIGTERM, then stop them all."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stopping.set())
        while not self.stopping.wait(POLL_S):
            self.watch_once()
        self.stop_all()

    def watch_once(self) -> None:
        """Restart what died, or note it; start what is due."""
        for child in self.children:
            self._watch(child)

    def _start(self, child: Child) -> None:
        log = open(self.log_dir / f"{child.name}.log", "ab", buffering=0)  # noqa: SIM115
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting\n".encode())
        # Its own session: Ctrl-C reaches `up` only, which stops the children in order.
        child.process = subprocess.Popen(
            child.command, env=child.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        child.last_error = ""
        child.reader = threading.Thread(target=self._copy_output, args=(child, log),
                                        name=f"output-{child.name}", daemon=True)
        child.reader.start()
        if child.ready is not None:
            child.ready(child.process)
        self.say(f"[{child.name}] started (pid {child.process.pid})")

    def _copy_output(self, child: Child, log: IO[bytes]) -> None:
        """Everything to the child's log; warnings and errors to the terminal as well."""
        assert child.process is not None and child.process.stdout is not None
        with log:
            for raw in child.process.stdout:
                log.write(raw)
                line = raw.decode(errors="replace").rstrip()
                if not line:
                    continue
                if NOTABLE.search(line) and not (child.quiet and child.quiet.search(line)):
                    child.last_error = line
                    self.say(f"[{child.name}] {line}")

    def _watch(self, child: Child) -> None:
        if child.given_up or child.process is None:
            return
        if child.restart_at is not None:
            if time.monotonic() >= child.restart_at:
                child.restarts += 1
                self._start(child)
            return
        code = child.process.poll()
        if code is None:
            return
        child.reader.join(timeout=1)  # so last_error is the child's last word
        lived_s = time.monotonic() - child.started_at
        self._plan_restart(child, code, lived_s)

    def _plan_restart(self, child: Child, code: int, lived_s: float) -> None:
        if lived_s >= FAST_DEATH_S:
            child.fast_deaths, child.delay_s = 0, FIRST_DELAY_S
        else:
            child.fast_deaths += 1
        last = f"; last error: {child.last_error}" if child.last_error else ""
        exited = f"[{child.name}] exited with {describe_exit(code)} after {lived_s:.0f} s{last}"
        if child.fast_deaths >= FAST_DEATHS_TO_GIVE_UP:
            child.given_up = True
            self.say(f"{exited}\n[{child.name}] ERROR: it died within {FAST_DEATH_S:.0f} s of "
                     f"starting {FAST_DEATHS_TO_GIVE_UP} times in a row; left stopped (see "
                     f"{self.log_dir / (child.name + '.log')}). The other processes keep "
                     "serving; fix the cause and start `make up` again.")
            return
        self.say(f"{exited}; restarting in {child.delay_s:.0f} s")
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
                os.killpg(child.process.pid, signal.SIGKILL)  # its own session: its tree
                child.process.wait()
            if child.reader is not None:
                child.reader.join(timeout=1)
            self.say(f"[{child.name}] stopped")


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
