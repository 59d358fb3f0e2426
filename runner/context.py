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

import copy
import json
import math
import numbers
import os
import re
import stat
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

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
_metrics_lock = threading.Lock()
_metrics_pipe: tuple[str, IO[str]] | None = None


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


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record one metric point; the run page charts it live.

    `value` must be a finite real number and `step` an integer or None. Outside the product
    (no metrics pipe) the point is printed to stderr as "metric key=value step=n".
    """
    _check_metric(key, value, step)
    line = json.dumps({"key": key, "value": float(value), "step": step, "time": time.time()})
    with _metrics_lock:
        pipe = _open_metrics_pipe()
        if pipe is not None:
            try:
                pipe.write(line + "\n")
                return
            except OSError:
                pass  # The executor is gone; the point is still worth seeing on stderr.
        suffix = "" if step is None else f" step={step}"
        print(f"metric {key}={float(value)!r}{suffix}", file=sys.stderr, flush=True)


def log_metrics(values: dict[str, float], step: int | None = None) -> None:
    """Record several metric points at the same step."""
    for key, value in values.items():
        _check_metric(key, value, step)
    for key, value in values.items():
        log_metric(key, value, step)


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


def _open_metrics_pipe() -> IO[str] | None:
    """The line-buffered metrics pipe, or None when not running under the executor."""
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
    stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8", closefd=False)
    _metrics_pipe = (key, stream)
    return stream


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
