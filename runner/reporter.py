"""Report a step attempt's events to the server over HTTP, in order, exactly once.

The executor hands lines and metric points to a `StepReporter` (its Sink). One sender thread
batches them into events numbered by `seq`, posts them in order, and retries the same events
with back-off while the server is unreachable. Replays are harmless: the server stores each
line and point under (step run, attempt, index) and applies each state event once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from runner.messages import (
    MAX_EVENTS_PER_REPORT,
    MAX_LOG_LINES_PER_EVENT,
    MAX_METRIC_POINTS_PER_EVENT,
    StepJob,
)

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.1
# Reports stay well under the server's body limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB by
# default): a report it refused with 413 would be dropped, and its lines and points lost.
MAX_EVENT_BYTES = 256_000
MAX_REPORT_BYTES = 1_000_000
MAX_BACKOFF_S = 5.0

T = TypeVar("T")


class AttemptStale(Exception):
    """The server says this attempt is no longer current (409): stop and report nothing more."""


class ReportRefused(Exception):
    """The server can never accept this report (4xx other than 409); it was dropped."""


class AttemptFinished(ReportRefused):
    """The attempt has finished already, so its token is spent (401): this is a duplicate
    delivery of its job, which is expected (R3), or a replay of its end."""


class ServerUnavailable(Exception):
    """The server did not take the report; try again later."""


class StepReporter:
    """Buffers what a step writes and reports it, with the attempt's own token."""

    def __init__(
        self,
        job: StepJob,
        *,
        client: httpx.Client | None = None,
        lost_contact_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        claimed_as: str | None = None,
    ) -> None:
        self.job = job
        # A job handed over in the answer to a final report was claimed for us already.
        self.claim_id = claimed_as or uuid.uuid4().hex
        self._claimed = claimed_as is not None
        self.handed_over: dict[str, Any] | None = None  # the next job, from a final report
        self.hand_over_claim = ""
        self._url = f"{job['server_url'].rstrip('/')}/api/worker/steps/{job['step_run_id']}/events/"
        self._headers = {"Authorization": f"StepToken {job['token']}",
                         "Content-Type": "application/json"}
        self._client = client or shared_client()
        self._attempt_json = json.dumps(job["attempt_id"])
        self._clock = clock
        # A worker that cannot reach the server stops its step before anyone retries it (R4).
        self._lost_contact_after_s = lost_contact_after_s or job["lost_contact_s"]
        self._lock = threading.Lock()
        self._lines: list[dict[str, Any]] = []
        self._points: list[str] = []  # as JSON objects
        self._next_line = 1
        self._next_point = 1
        self._next_seq = 1
        # Events formed but not yet acknowledged, as JSON: each is encoded once, however
        # often it is sent, and its size is known when reports are cut.
        self._outbox: list[str] = []
        self._last_contact = clock()
        self._last_sent = 0.0
        self.cancel_requested = False
        self.stale = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the executor's Sink -------------------------------------------------------------

    def log(self, stream: str, text: str, time: float) -> None:
        with self._lock:
            self._lines.append({"stream": stream, "text": text, "time": time})

    def metric(self, key: str, value: float, step: int | None, time: float) -> None:
        point = json.dumps({"key": key, "value": value, "step": step, "time": time})
        with self._lock:
            self._points.append(point)

    def metric_json(self, text: str) -> None:
        """A point as the JSON object a report holds, in ASCII (checked by the executor's
        StreamSink): most points come so, as the step wrote them, and are not encoded again."""
        with self._lock:
            self._points.append(text)

    def contact_until(self) -> float:
        """Until when (in the reporter's clock, time.monotonic) the step may run without more
        contact with the server: lost_contact_s after the last acknowledged report was sent,
        which is before the server recorded it, so the server's count never starts earlier."""
        return self._last_contact + self._lost_contact_after_s

    def should_stop(self) -> str | None:
        """Polled by the executor: why the step must stop now, if it must."""
        if self.stale:
            return "lost_contact"
        if self.cancel_requested:
            return "canceled"
        if self._clock() - self._last_contact > self._lost_contact_after_s:
            return "lost_contact"
        return None

    # --- the attempt's life --------------------------------------------------------------

    def claim(self, deadline_s: float = 60.0) -> bool:
        """Claim the attempt (queued -> running). False if another delivery already has it."""
        if self._claimed:
            self._start_reporting()
            return True
        event = self._event("started", claim=self.claim_id, worker=worker_name(),
                            pid=os.getpid())
        self._outbox.append(event)
        try:
            self._send_until_acknowledged(deadline_s, stop_on_refusal=True)
        except (AttemptStale, AttemptFinished) as exc:
            log.info("step run %s: attempt not claimed, as another delivery has it or it has "
                     "ended: %s", self.job["step_run_id"], exc)
            return False
        except (ReportRefused, ServerUnavailable) as exc:
            log.warning("step run %s: attempt not claimed: %s", self.job["step_run_id"], exc)
            return False
        self._start_reporting()
        return True

    def _start_reporting(self) -> None:
        self._thread = threading.Thread(target=self._run, name="step-reporter", daemon=True)
        self._thread.start()

    def finish(self, failed: dict[str, Any] | None, outputs: dict[str, Any],
               deadline_s: float = 600.0, hand_over: bool = False) -> None:
        """Flush everything, then report the end of the attempt; gives up after the deadline.
        With `hand_over` the slot asks for the run's next step on the same target; the answer
        leaves its job in `handed_over`, claimed with the id `hand_over_claim`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._form_events()
        asked = {}
        if hand_over:
            self.hand_over_claim = uuid.uuid4().hex
            asked = {"hand_over": {"claim": self.hand_over_claim, "worker": worker_name(),
                                   "pid": os.getpid()}}
        if failed is None:
            self._outbox.append(self._event("finished", outputs=outputs, exit_code=0, **asked))
        else:
            self._outbox.append(self._event("failed", **failed, **asked))
        try:
            self._send_until_acknowledged(deadline_s)
        except AttemptStale:
            log.warning("step run %s: final report not taken", self.job["step_run_id"])
        except AttemptFinished:
            pass  # a replay of the end the server has already
        except ServerUnavailable:
            log.error("step run %s: could not report the end of the attempt within %s s",
                      self.job["step_run_id"], deadline_s)

    # --- internals -----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = FLUSH_EVERY_S
        while not self._stop.wait(backoff):
            self._form_events()
            if not self._outbox and self._clock() - self._last_sent >= self.job["heartbeat_s"]:
                self._outbox.append(self._event("heartbeat"))
            if not self._outbox:
                backoff = FLUSH_EVERY_S
                continue
            try:
                self._send_once()
                # What one report could not hold goes at once, not a report every interval.
                backoff = 0.0 if self._outbox else FLUSH_EVERY_S
            except AttemptStale:
                self.stale = True
                return
            except ReportRefused:
                backoff = FLUSH_EVERY_S
            except ServerUnavailable:
                backoff = min(MAX_BACKOFF_S, max(backoff, FLUSH_EVERY_S) * 2)

    def _event(self, type_: str, **fields: Any) -> str:
        event = {"type": type_, "seq": self._next_seq, "time": time.time(), **fields}
        self._next_seq += 1
        return json.dumps(event)

    def _form_events(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            points, self._points = self._points, []
        for chunk in _chunks(lines, MAX_LOG_LINES_PER_EVENT, _line_size):
            self._outbox.append(self._event("log", first=self._next_line, lines=chunk))
            self._next_line += len(chunk)
        for texts in _chunks(points, MAX_METRIC_POINTS_PER_EVENT, len):
            event = self._event("metric", first=self._next_point)
            self._outbox.append(f'{event[:-1]}, "points": [{",".join(texts)}]}}')
            self._next_point += len(texts)

    def _send_until_acknowledged(self, deadline_s: float, stop_on_refusal: bool = False) -> None:
        deadline = self._clock() + deadline_s
        backoff = 0.1
        while self._outbox:
            try:
                self._send_once()
                backoff = 0.1
            except ReportRefused:
                if stop_on_refusal:
                    raise
            except ServerUnavailable:
                if self._clock() + backoff > deadline:
                    raise
                time.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    def _send_once(self) -> None:
        batch, size = [], 0
        for event in self._outbox[:MAX_EVENTS_PER_REPORT]:
            size += len(event)
            if batch and size > MAX_REPORT_BYTES:
                break
            batch.append(event)
        body = f'{{"attempt_id": {self._attempt_json}, "events": [{",".join(batch)}]}}'
        sent_at = self._clock()
        try:
            response = self._client.post(self._url, content=body.encode(), headers=self._headers)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(str(exc)) from exc
        self._last_sent = self._clock()
        if response.status_code == 409:
            raise AttemptStale(response.text)
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnavailable(f"HTTP {response.status_code}")
        self._last_contact = sent_at
        del self._outbox[:len(batch)]
        if response.status_code == 401 and _says_finished(response):
            raise AttemptFinished(response.text[:500])
        if response.status_code >= 400:
            # A report the server can never accept (a bug, a revoked token): retrying forever
            # would block everything after it, so it is dropped.
            log.error("step run %s: report refused with %s: %s", self.job["step_run_id"],
                      response.status_code, response.text[:500])
            raise ReportRefused(response.text[:500])
        answer = response.json()
        self.cancel_requested = self.cancel_requested or bool(answer.get("cancel"))
        self.handed_over = answer.get("next") or self.handed_over


def _says_finished(response: httpx.Response) -> bool:
    try:
        return response.json().get("finished") is True
    except (ValueError, AttributeError):
        return False


_clients: dict[int, httpx.Client] = {}


def shared_client() -> httpx.Client:
    """One HTTP client per process: creating one loads CA certificates (tens of ms), which
    would be paid on every step; keyed by pid so a forked pool child makes its own."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = httpx.Client(timeout=10.0)
    return _clients[pid]


def _line_size(line: dict[str, Any]) -> int:
    return len(line["text"]) + 80  # about, with its JSON keys


def _chunks(items: list[T], max_items: int, size_of: Callable[[T], int]) -> list[list[T]]:
    """Split into events of at most `max_items` and about MAX_EVENT_BYTES each."""
    chunks: list[list[T]] = []
    current: list[T] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if current and (len(current) == max_items or size + item_size > MAX_EVENT_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


def worker_name() -> str:
    return os.environ.get("PIPELINES_WORKER_NAME") or socket.gethostname()
