"""The step's stdout, stderr and metrics pipes, read into lines and handed to a Sink with the
declared secrets masked (S7)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, Protocol

from runner import context
from runner.messages import MAX_LOG_LINE_CHARS

if TYPE_CHECKING:
    from runner.executor.launch import StepProcess

logger = logging.getLogger(__name__)

READER_JOIN_S = 5.0  # how long to wait for output still in the pipes after the step ended
STDERR_TAIL_LINES = 200  # kept to find the Python traceback

_READ_LIMIT = 64 * 1024  # bytes per read of a line; more than MAX_LOG_LINE_CHARS needs
_CUT_MARK = " [line cut]"


class Sink(Protocol):
    """Where streamed output goes; the worker's reporter implements it.

    The executor calls it from one thread at a time, so it need not be thread-safe; it should
    buffer and return quickly, since a slow sink slows the step's pipes and the final flush.
    """

    def log(self, stream: str, text: str, time: float) -> None: ...

    def metric(self, key: str, value: float, step: int | None, time: float) -> None: ...

    # It may also have metric_json(text): a point as the JSON object the server takes, for
    # a line that is one already (StreamSink checks), which saves encoding it again.


class Masker:
    """Replaces every declared secret value with "***"."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values: set[str] = set()
        for secret in secrets:
            values.add(secret)
            # Output is read line by line, so each line of a multi-line secret is masked too.
            values.update(line.strip() for line in secret.splitlines())
        ordered = sorted((v for v in values if v), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub("***", text) if self._pattern else text


class StreamSink:
    """Masks and cuts lines, serializes calls into the Sink, and keeps the tail of stderr."""

    def __init__(self, sink: Sink, mask: Masker) -> None:
        self._sink, self._mask = sink, mask
        self._lock = threading.Lock()
        self._open = True
        self._warned = False
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._metric_json = getattr(sink, "metric_json", None)

    def log(self, stream: str, text: str) -> None:
        line = _cut(self._mask(text))
        if stream == "stderr":
            self.stderr_tail.append(line)
        self._deliver(self._sink.log, stream, line, time.time())

    def system(self, text: str) -> None:
        self.log("system", text)

    def metric_lines(self, texts: list[str]) -> None:
        """The metric lines of one read: each checked, the points handed on together."""
        points = []
        for text in texts:
            point = parse_metric(text)
            if point is None:
                self.system(f"ignored a malformed metric line: {text[:200]}")
            else:
                points.append((text, point))
        if points:
            self._deliver(self._hand_on_points, points)

    def _hand_on_points(self, points: list[tuple[str, _Point]]) -> None:
        for text, (key, value, step, when, as_sent) in points:
            masked = self._mask(key)
            if (as_sent and self._metric_json is not None and masked == key
                    and self._mask(text) == text):
                self._metric_json(text)
            else:
                self._sink.metric(masked, value, step, when)

    def close(self) -> None:
        with self._lock:
            self._open = False

    def _deliver(self, method: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if not self._open:
                return  # The step has been reported; late output is dropped.
            try:
                method(*args)
            except Exception:  # the pipes must keep draining or the step blocks
                if not self._warned:
                    logger.exception("the sink failed; dropping step output")
                    self._warned = True


def _cut(line: str) -> str:
    if len(line) <= MAX_LOG_LINE_CHARS:
        return line
    return line[: MAX_LOG_LINE_CHARS - len(_CUT_MARK)] + _CUT_MARK


# key, value, step, time, and whether the line is the point as the server takes it: exactly
# those four fields, all valid, in ASCII (so its length is its size in a report).
_Point = tuple[str, float, int | None, float, bool]


def parse_metric(text: str) -> _Point | None:
    """A metric line as written by context.log_metric, or None when it is malformed."""
    try:
        data = _loads(text)
        key, value, step = data["key"], data["value"], data.get("step")
        if not isinstance(key, str) or not key or len(key) > context.MAX_METRIC_KEY_CHARS:
            return None
        if not _is_finite_number(value):
            return None
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            return None
        when = data.get("time")
        timed = _is_finite_number(when)
        as_sent = timed and len(data) == 4 and "step" in data and text.isascii()
        return key, float(value), step, float(when) if timed else time.time(), as_sent
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
        return None


_scan_once = json.JSONDecoder().scan_once


def _loads(text: str) -> Any:
    """json.loads(text), in half the time for a line that is one JSON value and nothing else
    (as context.log_metric writes them): json.loads matches whitespace around it twice."""
    try:
        data, end = _scan_once(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)  # raises as json.loads does
    return data if end == len(text) else json.loads(text)


def _is_finite_number(value: Any) -> bool:
    # By type: JSON gives exactly int, float or bool, and a bool is no number here.
    return type(value) in (int, float) and math.isfinite(value)


def start_reader(step: StepProcess, stream: StreamSink) -> threading.Thread:
    """One thread hands on the lines of the step's stdout, stderr and metrics pipes until
    each is at its end (a thread each cost more to start than a short step's reading)."""
    sources: list[tuple[IO[bytes], Callable[[str], None] | Lines]] = [
        (step.stdout, lambda text: stream.log("stdout", text)),
        (step.stderr, lambda text: stream.log("stderr", text)),
        (os.fdopen(step.metrics_fd, "rb"), MetricLines(stream.metric_lines)),
    ]
    thread = threading.Thread(target=_pump, args=(sources,), daemon=True,
                              name=f"step-reader-{step.pid}")
    thread.start()
    return thread


def _pump(sources: list[tuple[IO[bytes], Callable[[str], None] | Lines]]) -> None:
    with contextlib.ExitStack() as opened, selectors.DefaultSelector() as selector:
        for source, handle in sources:
            opened.enter_context(source)
            lines = handle if isinstance(handle, Lines) else Lines(handle)
            selector.register(source, selectors.EVENT_READ, lines)
        while selector.get_map():
            for key, _ in selector.select():
                chunk = os.read(key.fd, _READ_LIMIT)
                if chunk:
                    key.data.feed(chunk)
                else:
                    key.data.end()
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # now, even while another pipe stays open


class Lines:
    """Cuts a stream's bytes into decoded lines without their line ending, for `handle`; of a
    line longer than _READ_LIMIT bytes only the beginning is handed on."""

    def __init__(self, handle: Callable[[str], None]) -> None:
        self.handle = handle
        self.pending = b""
        self.skipping = False  # the rest of a line whose beginning was handed on

    def feed(self, chunk: bytes) -> None:
        data, start = self.pending + chunk, 0
        while True:
            end = data.find(b"\n", start, start + _READ_LIMIT)
            if end >= 0:
                stop = end + 1
            elif len(data) - start >= _READ_LIMIT:
                stop = start + _READ_LIMIT
            else:
                break
            self._piece(data[start:stop])
            start = stop
        self.pending = data[start:]

    def end(self) -> None:
        if self.pending:
            self._piece(self.pending)
            self.pending = b""

    def _piece(self, piece: bytes) -> None:
        if not self.skipping:
            text = piece.decode("utf-8", errors="replace")
            try:
                self.handle(text[:-1].removesuffix("\r") if text.endswith("\n") else text)
            except Exception:  # one line must not stop the reading of the step's pipes
                logger.exception("could not hand on a line of the step's output")
        self.skipping = not piece.endswith(b"\n")


class MetricLines(Lines):
    """The metrics pipe's lines, handed on as a list a read: a call a line cost about as much
    as parsing it. A read with a line of _READ_LIMIT bytes or more is cut as Lines cuts it."""

    def __init__(self, handle_all: Callable[[list[str]], None]) -> None:
        super().__init__(lambda text: handle_all([text]))
        self.handle_all = handle_all

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk
        cut = data.rfind(b"\n") + 1
        if self.skipping or len(data) - cut >= _READ_LIMIT or _has_long_line(data[:cut]):
            super().feed(chunk)
            return
        self.pending = data[cut:]
        if not cut:
            return
        texts = data[:cut].decode("utf-8", errors="replace").split("\n")[:-1]
        if b"\r" in data[:cut]:
            texts = [text.removesuffix("\r") for text in texts]
        try:
            self.handle_all(texts)
        except Exception:  # one read must not stop the reading of the step's pipes
            logger.exception("could not hand on the metric lines of the step")


def _has_long_line(lines: bytes) -> bool:
    return len(lines) > _READ_LIMIT and max(map(len, lines.split(b"\n"))) >= _READ_LIMIT


def join_reader(reader: threading.Thread, stream: StreamSink) -> None:
    reader.join(READER_JOIN_S)
    if reader.is_alive():
        stream.system("stopped reading the step's output: a process that left the step's "
                      "process group still holds it open")
