"""A run seen from code: follow it to its end with progress and logs, read its metrics,
download its outputs, cancel it or run again from what failed.

Following takes the run's WebSocket when it opens (events as they happen, docs/api.md), and
polls the REST API otherwise, or from where the socket dropped. Either way the REST API is
the truth: the socket's events only say sooner what it would say, and a log event that skips
numbers is filled in from it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, TextIO

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection

from runner.sdk.client import ApiError, Client

RUN_ENDED = ("succeeded", "failed", "canceled")
STEP_ENDED = ("succeeded", "failed", "canceled", "skipped", "reused")
NO_LOGS = ("pending", "queued", "skipped", "reused")
TRANSIENT_STATUSES = (502, 503, 504)  # a proxy or the database briefly away; keep following


class RunTimeout(Exception):
    """wait() gave up before the run ended (the run goes on)."""


class Run:
    """One run; `data` is the server's view of it (GET /api/runs/{id}/), kept by refresh()."""

    # While following over the socket: how long it may stay quiet before the run is asked
    # for over REST (events can be lost, so the end of a run is never missed for long).
    quiet_check_s = 10.0

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.client, self.data = client, data
        self._log_after: dict[tuple[str, int], int] = {}
        self._drained: set[tuple[str, int]] = set()
        self._last_progress = ""

    @classmethod
    def get(cls, client: Client, run_id: int) -> Run:
        return cls(client, client.get(f"/api/runs/{run_id}/"))

    def __repr__(self) -> str:
        return f"Run({self.id}, status={self.status!r})"

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def is_finished(self) -> bool:
        return self.status in RUN_ENDED

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        """Each step run by node id: state, error, inputs and outputs (digests), ..."""
        return {step["node"]: step for step in self.data.get("steps", [])}

    @property
    def url(self) -> str:
        return f"{self.client.url}/runs/{self.id}/"

    def refresh(self) -> Run:
        self.data = self.client.get(f"/api/runs/{self.id}/")
        return self

    # --- Following ---------------------------------------------------------------------------

    def wait(self, *, show_output: bool = True, timeout: float | None = None,
             poll_s: float = 1.0, out: TextIO | None = None, live: bool = True) -> Run:
        """Follow the run until it ends: over its socket as events come (`live`), else by
        polling every `poll_s`. With `show_output`, print its progress (steps done of total,
        each step's state) when it changes, and every step's new log lines."""
        stream = (out or sys.stdout) if show_output else None
        deadline = None if timeout is None else time.monotonic() + timeout
        if live and self._follow_socket(stream, deadline):
            return self
        while True:
            if self._poll(stream) and self.is_finished:
                return self
            self._check_deadline(deadline)
            time.sleep(poll_s)

    def _check_deadline(self, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise RunTimeout(f"run {self.id} is still {self.status} past its timeout")

    def _follow_socket(self, out: TextIO | None, deadline: float | None) -> bool:
        """Follow over the socket to the run's end; False when the socket does not open or
        drops first (the caller polls on from there)."""
        try:
            socket = self.client.open_socket(f"/ws/runs/{self.id}/")
        except (OSError, TimeoutError, WebSocketException):
            return False
        with socket:
            # Subscribed first, then caught up over REST: nothing falls between the two.
            if not self._poll(out):
                return False
            while not self.is_finished:
                if not self._next_event(socket, out, deadline):
                    return False
        return self._poll(out)  # the run's last lines and final state, from the database

    def _next_event(self, socket: ClientConnection, out: TextIO | None,
                    deadline: float | None) -> bool:
        """Apply the socket's next event, or ask over REST when it stays quiet; False when
        the socket closed."""
        self._check_deadline(deadline)
        wait_s = self.quiet_check_s
        if deadline is not None:
            wait_s = max(0.0, min(wait_s, deadline - time.monotonic()))
        try:
            message = socket.recv(timeout=wait_s)
        except TimeoutError:
            self._poll(out)
            return True
        except WebSocketException:
            return False
        self._apply(json.loads(message), out)
        return True

    def _apply(self, event: dict[str, Any], out: TextIO | None) -> None:
        """One socket event into `data` (and to `out`)."""
        kind = event.pop("type", None)
        if kind == "run":
            self.data.update(event)
        elif kind == "step":
            self._replace_step(event)
        elif kind == "log" and out is not None:
            self._print_log_event(event, out)
        if kind in ("run", "step") and out is not None:
            self._print_progress(out)

    def _replace_step(self, step: dict[str, Any]) -> None:
        steps = self.data.setdefault("steps", [])
        at = next((i for i, known in enumerate(steps) if known["node"] == step["node"]), None)
        if at is None:
            steps.append(step)
        else:
            steps[at] = step

    def _print_log_event(self, event: dict[str, Any], out: TextIO) -> None:
        """The event's lines not printed yet; when it skips numbers (an event was lost),
        everything new from REST instead."""
        node, attempt, first = event["node"], event["attempt"], event["first"]
        key = (node, attempt)
        seen = max(self._log_after.get(key, 0), 0)
        if first > seen + 1:
            lines = self.new_log_lines(node, attempt)
        else:
            lines = event["lines"][seen + 1 - first:]
            self._log_after[key] = max(seen, first + len(event["lines"]) - 1)
        for line in lines:
            print(f"[{node}] {line['text']}", file=out, flush=True)

    def _poll(self, out: TextIO | None) -> bool:
        """Refresh, and print what is new; False (try again) while the server is briefly
        unreachable or restarting."""
        try:
            self.refresh()
            if out is not None:
                self.print_new_logs(out)
        except httpx.TransportError:
            return False
        except ApiError as exc:
            if exc.status not in TRANSIENT_STATUSES:
                raise
            return False
        if out is not None:
            self._print_progress(out)
        return True

    def _print_progress(self, out: TextIO) -> None:
        progress = self.progress()
        if progress != self._last_progress:
            print(progress, file=out, flush=True)
            self._last_progress = progress

    def progress(self) -> str:
        """One line: status, steps done of total, and each step's state."""
        steps = self.steps
        done = sum(step["state"] in STEP_ENDED for step in steps.values())
        states = ", ".join(f"{node} {step['state']}" for node, step in steps.items())
        return f"run {self.id} {self.status}: {done}/{len(steps)} steps done ({states})"

    def print_new_logs(self, out: TextIO) -> None:
        for node, step in self.steps.items():
            key = (node, step["attempt"])
            # A step that has not started has no lines; one that ended has them all stored.
            if step["state"] in NO_LOGS or key in self._drained:
                continue
            for line in self.new_log_lines(node, step["attempt"]):
                print(f"[{node}] {line['text']}", file=out, flush=True)
            if step["state"] in STEP_ENDED:
                self._drained.add(key)

    def new_log_lines(self, node: str, attempt: int) -> list[dict[str, Any]]:
        """The step's lines not fetched before by this object."""
        key = (node, attempt)
        lines: list[dict[str, Any]] = []
        while True:
            page = self.client.get(f"/api/runs/{self.id}/steps/{node}/logs/",
                                   after=self._log_after.get(key, -1), attempt=attempt)
            lines += page["lines"]
            self._log_after[key] = page["next"]
            if not page["more"]:
                return lines

    def logs(self, node: str) -> list[str]:
        """All of a step's output lines (its latest attempt)."""
        attempt = self.steps[node]["attempt"]
        lines, after = [], -1
        while True:
            page = self.client.get(f"/api/runs/{self.id}/steps/{node}/logs/", after=after,
                                   attempt=attempt)
            lines += [line["text"] for line in page["lines"]]
            after = page["next"]
            if not page["more"]:
                return lines

    # --- Results -----------------------------------------------------------------------------

    def metrics(self, key: str | None = None, node: str | None = None) -> Metrics:
        """Metric points as rows (node, attempt, key, step, value, time)."""
        body = self.client.get(f"/api/runs/{self.id}/metrics/", key=key, node=node)
        return Metrics(
            {"node": s["node"], "attempt": s["attempt"], "key": s["key"], "step": step,
             "value": value, "time": moment}
            for s in body["series"] for step, value, moment in zip(s["steps"], s["values"],
                                                                   s["times"], strict=True))

    def output_digest(self, node: str, port: str) -> str:
        outputs = self.steps[node]["outputs"] or {}
        if port not in outputs:
            raise KeyError(f"step {node!r} of run {self.id} has no output {port!r} "
                           f"(it has: {', '.join(outputs) or 'none yet'})")
        return str(outputs[port])

    def download(self, node: str, port: str, dest: str | Path, *, path: str = "") -> Path:
        """Save a step's output under `dest`: a folder output is unpacked into it, a file
        output (or one `path` inside a folder) is written to dest/<its name>."""
        return download_artifact(self.client, self.output_digest(node, port), dest, path=path)

    # --- Control -----------------------------------------------------------------------------

    def cancel(self) -> Run:
        self.client.post(f"/api/runs/{self.id}/cancel/")
        return self.refresh()

    def rerun(self, *, from_failed: bool = True) -> Run:
        """A new run: only what failed and what follows it (from_failed), or every step."""
        return Run(self.client, self.client.post(f"/api/runs/{self.id}/rerun/",
                                                 {"from_failed": from_failed}))


class Metrics(list[dict[str, Any]]):
    """Metric points as a list of dicts, so `pandas.DataFrame(metrics)` is a table."""

    @property
    def columns(self) -> dict[str, list[Any]]:
        names = ("node", "attempt", "key", "step", "value", "time")
        return {name: [row[name] for row in self] for name in names}

    def values(self, key: str, node: str | None = None) -> list[float]:
        """The values of one metric, in the order they were logged."""
        return [row["value"] for row in self
                if row["key"] == key and (node is None or row["node"] == node)]

    def to_pandas(self) -> Any:
        import pandas  # optional: only this method needs it

        return pandas.DataFrame(self.columns)


def download_artifact(client: Client, digest: str, dest: str | Path, *, path: str = "") -> Path:
    """Save an artifact under `dest` (see Run.download); the folder or file written."""
    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as spool:  # on disk: outputs may be large
        headers = client.download(f"/api/artifacts/{digest}/", spool, path=path or None)
        spool.seek(0)
        if headers.get("content-type") == "application/zip" and not path:
            with zipfile.ZipFile(spool) as archive:
                _extract(archive, folder)
            return folder
        target = folder / (Path(path).name if path else _filename(headers, digest))
        with open(target, "wb") as out:
            shutil.copyfileobj(spool, out)
        return target


def _extract(archive: zipfile.ZipFile, folder: Path) -> None:
    root = folder.resolve()
    for name in archive.namelist():
        if not (root / name).resolve().is_relative_to(root):
            raise ValueError(f"the download holds a path outside its folder: {name!r}")
    archive.extractall(folder)


def _filename(headers: Any, digest: str) -> str:
    disposition = headers.get("content-disposition", "")
    if 'filename="' in disposition:
        return disposition.split('filename="', 1)[1].split('"', 1)[0]
    return digest.split(":")[-1][:12]
