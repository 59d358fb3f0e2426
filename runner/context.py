"""What a step script uses to reach its parameters, inputs, outputs and metrics.

    from runner import context

    alpha = context.param("alpha", 0.5)
    data = context.input_path("data")
    context.log_metric("loss", 0.25, step=1)
    (context.output_path("model") / "model.pkl").write_bytes(...)

This module runs inside the step's own interpreter, which may be another virtualenv with none of
the worker's packages: it uses the standard library only. Everything comes from environment
variables that the executor sets, read at call time. A script run by hand (none of them set)
still runs: it has no parameters, and its metrics go to stderr.
"""

from __future__ import annotations

import atexit
import copy
import json
import math
import numbers
import os
import re
import select
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

PARAMS_VAR = "PIPELINES_PARAMS"
METRICS_FD_VAR = "PIPELINES_METRICS_FD"
METRICS_INODE_VAR = "PIPELINES_METRICS_INODE"
RUN_ID_VAR = "PIPELINES_RUN_ID"
NODE_VAR = "PIPELINES_NODE"
ATTEMPT_VAR = "PIPELINES_ATTEMPT"
INPUT_PREFIX = "PIPELINES_INPUT_"
OUTPUT_PREFIX = "PIPELINES_OUTPUT_"
MAX_METRIC_KEY_CHARS = 200  # runner.messages caps metric keys at this length

_MISSING: Any = object()
_params_cache: tuple[str, dict[str, Any]] | None = None


class MissingPortError(KeyError):
    """The step asked for an input or output port it was not given."""

    def __str__(self) -> str:
        # KeyError would print the message with quotes around it.
        return str(self.args[0])


def port_variable(prefix: str, port: str) -> str:
    """The environment variable that carries a port's path: prefix + the upper-cased port name.

    Characters that cannot appear in a variable name become "_". The executor uses this same
    function, so the two sides always agree.
    """
    return prefix + re.sub(r"[^A-Z0-9_]", "_", port.upper())


# --- Parameters -------------------------------------------------------------------------


def params() -> dict[str, Any]:
    """All resolved parameters of this step (a copy; read from the file once and cached)."""
    global _params_cache
    path = os.environ.get(PARAMS_VAR, "")
    if not path:
        return {}
    if _params_cache is None or _params_cache[0] != path:
        with open(path, encoding="utf-8") as handle:
            _params_cache = (path, json.load(handle))
    return copy.deepcopy(_params_cache[1])


def param(name: str, default: Any = _MISSING) -> Any:
    """One parameter's value, or `default`; without a default a missing name raises KeyError."""
    values = params()
    if name in values:
        return values[name]
    if default is not _MISSING:
        return default
    known = ", ".join(sorted(values)) or "none"
    raise MissingPortError(f"no parameter {name!r} (parameters: {known})")


# --- Inputs and outputs -----------------------------------------------------------------


def input_path(name: str) -> Path:
    """The path of input port `name`: a folder, or a file when a single file was passed."""
    value = os.environ.get(port_variable(INPUT_PREFIX, name))
    if not value:
        raise MissingPortError(f"no input {name!r} (inputs: {_ports(INPUT_PREFIX)})")
    return Path(value)


def output_path(name: str) -> Path:
    """The folder to write output port `name` into (created if needed)."""
    value = os.environ.get(port_variable(OUTPUT_PREFIX, name))
    if not value:
        raise MissingPortError(f"no output {name!r} (outputs: {_ports(OUTPUT_PREFIX)})")
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ports(prefix: str) -> str:
    names = sorted(key[len(prefix):].lower() for key in os.environ if key.startswith(prefix))
    return ", ".join(names) or "none"


# --- Metrics ----------------------------------------------------------------------------
#
# Points are buffered in the process and written to the executor's pipe as whole JSON lines:
# every FLUSH_POINTS points, FLUSH_EVERY_S after the first point of a batch (a thread's timer),
# on flush_metrics(), and at interpreter exit (an uncaught exception included). Each write is
# at most PIPE_BUF bytes of whole lines, which a pipe writes atomically, so no half line
# interleaves with another thread's or another process's. What a step killed by SIGKILL (or
# ended by os._exit) had not flushed is lost: at most the points of the last FLUSH_EVERY_S
# (docs/reliability.md, R8).

# Measured on 100,000 points: larger batches than 1000 saved nothing more. A timer under
# 10 ms cost a step logging a point a millisecond 10-25 us of CPU a point; 20 ms, nothing seen.
FLUSH_POINTS = 1000
FLUSH_EVERY_S = 0.02
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)  # POSIX guarantees at least 512
_MAX_CACHED_KEYS = 10_000

_metrics_lock = threading.Lock()
_metrics_pipe: tuple[str, int] | None = None  # (variables, descriptor), as last checked
_buffer: list[str] = []  # whole lines, not yet written
_buffer_fd = -1  # the descriptor they are for
_flush_at = FLUSH_POINTS  # 1 once the interpreter exits: nothing is left in a buffer then
_timer_started = threading.Event()  # a batch began: the flusher writes it FLUSH_EVERY_S later
_flusher: threading.Thread | None = None
_keys: dict[str, str] = {}  # keys checked before, as JSON


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record one metric point; the run page charts it live.

    `value` must be a finite real number and `step` an integer or None. Under the executor the
    point is buffered and written within FLUSH_EVERY_S (see flush_metrics). Outside the product
    (no metrics pipe) it is printed to stderr as "metric key=value step=n".
    """
    encoded = _keys.get(key) if type(key) is str else None
    if (encoded is None or type(value) is not float or not math.isfinite(value)
            or (step is not None and type(step) is not int)):
        _check_metric(key, value, step)  # the common case above is valid already
        encoded, value = _key_json(key), float(value)
        step = None if step is None else int(step)
    line = (f'{{"key": {encoded}, "value": {value!r}, "step": '
            f'{"null" if step is None else step}, "time": {time.time()!r}}}\n')
    with _metrics_lock:
        if not _buffer and not _begin_batch():
            _print_points([line])
            return
        _buffer.append(line)
        if len(_buffer) >= _flush_at:
            _write_buffer()


def log_metrics(values: dict[str, float], step: int | None = None) -> None:
    """Record several metric points at the same step."""
    for key, value in values.items():
        _check_metric(key, value, step)
    for key, value in values.items():
        log_metric(key, value, step)


def flush_metrics() -> None:
    """Write the points logged so far to the executor now.

    Not needed for a step that ends by returning, by sys.exit or by an exception: they are
    written at exit. A step about to end by os._exit, or that wants its points charted
    before a long pause, calls it.
    """
    with _metrics_lock:
        _write_buffer()


def _check_metric(key: str, value: Any, step: Any) -> None:
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"a metric key must be a non-empty string, not {key!r}")
    if len(key) > MAX_METRIC_KEY_CHARS:
        raise ValueError(f"metric key longer than {MAX_METRIC_KEY_CHARS} characters: {key[:40]!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"metric {key!r}: the value must be a real number, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"metric {key!r}: the value must be finite, not {value!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ValueError(f"metric {key!r}: step must be an integer or None, not {step!r}")


def _key_json(key: str) -> str:
    """A checked key as JSON, remembered (up to a bound) so that its next point skips both."""
    encoded = json.dumps(key)
    if len(_keys) < _MAX_CACHED_KEYS:
        _keys[key] = encoded
    return encoded


def _begin_batch() -> bool:
    """Whether there is a pipe to write the batch that the next point begins to (the lock
    held); its points go where it was when the batch began."""
    global _buffer_fd
    fd = _open_metrics_pipe()
    if fd is None:
        return False
    _buffer_fd = fd
    _start_timer()
    return True


def _write_buffer() -> None:
    """Write the buffered lines (the lock held) in pieces of whole lines of at most PIPE_BUF
    bytes; what cannot be written goes to stderr."""
    if not _buffer:
        return
    data = "".join(_buffer).encode()
    _buffer.clear()
    start = 0
    try:
        while start < len(data):
            end = len(data)
            if end - start > _PIPE_BUF:
                end = data.rfind(b"\n", start, start + _PIPE_BUF) + 1 or data.find(b"\n", start) + 1
            _write_all(_buffer_fd, data[start:end])
            start = end
    except OSError:
        # The executor is gone; the points are still worth seeing on stderr.
        _print_points(data[start:].decode().splitlines(keepends=True))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _print_points(lines: list[str]) -> None:
    for line in lines:
        point = json.loads(line)
        suffix = "" if point["step"] is None else f" step={point['step']}"
        print(f"metric {point['key']}={point['value']!r}{suffix}", file=sys.stderr, flush=True)


def _start_timer() -> None:
    global _flusher
    if _flusher is None:
        _flusher = threading.Thread(target=_flush_after_a_while, name="metrics-flusher",
                                    daemon=True)
        _flusher.start()
    _timer_started.set()


def _flush_after_a_while() -> None:
    while True:
        _timer_started.wait()
        time.sleep(FLUSH_EVERY_S)
        with _metrics_lock:
            _timer_started.clear()
            _write_buffer()


def _at_exit() -> None:
    global _flush_at
    with _metrics_lock:
        _flush_at = 1  # a daemon thread that logs on writes at once
        _write_buffer()


def _after_fork_in_child() -> None:
    """A forked child starts with no buffer (its parent writes those points) and no flusher."""
    global _metrics_lock, _timer_started, _flusher
    _metrics_lock = threading.Lock()
    _timer_started = threading.Event()
    _flusher = None
    _buffer.clear()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)


def _open_metrics_pipe() -> int | None:
    """The metrics pipe's descriptor, or None when not running under the executor."""
    global _metrics_pipe
    fd_text = os.environ.get(METRICS_FD_VAR, "")
    if not fd_text.isdigit():
        return None
    key = f"{fd_text}:{os.environ.get(METRICS_INODE_VAR, '')}"
    if _metrics_pipe is not None and _metrics_pipe[0] == key:
        return _metrics_pipe[1]
    fd = int(fd_text)
    if not _is_metrics_pipe(fd):
        return None
    _metrics_pipe = (key, fd)
    return fd


def _is_metrics_pipe(fd: int) -> bool:
    """Whether `fd` is the executor's pipe.

    A child process of the step inherits the variable but, with subprocess's default
    close_fds, not the descriptor: there the number may be closed or name another file, which
    must never receive metric lines.
    """
    try:
        info = os.fstat(fd)
    except OSError:
        return False
    expected = os.environ.get(METRICS_INODE_VAR, "")
    return stat.S_ISFIFO(info.st_mode) and (not expected or expected == str(info.st_ino))


# --- Identity ---------------------------------------------------------------------------


def run_id() -> str | None:
    """The id of the run this step belongs to (None when run by hand)."""
    return os.environ.get(RUN_ID_VAR) or None


def node() -> str | None:
    """The id of this step's node in the pipeline (None when run by hand)."""
    return os.environ.get(NODE_VAR) or None


def attempt() -> int | None:
    """This step run's 1-based attempt number (None when run by hand)."""
    value = os.environ.get(ATTEMPT_VAR, "")
    return int(value) if value.isdigit() else None
