"""Scoring rows with a deployed model version.

The server checks the rows itself; the model predicts in a process of its own (runner.scoring),
since loading a joblib file runs its pickle, which must never happen inside the web server with
its database and keys. The process is started on the first request (model.joblib copied from
the artifact, settings.json read here) and kept by digest, so a request costs one round trip.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings

from pipelines_ui.data.models import Artifact
from pipelines_ui.data.services import open_artifact

MAX_ROWS = 10_000  # per request; larger tables belong in a parallel-run step
CACHE_SIZE = 8  # model processes kept, the least recently used stopped first
LOAD_TIMEOUT_S = 60.0
PREDICT_TIMEOUT_S = 60.0
ALLOWED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")  # all the model's process inherits

_cache: OrderedDict[str, LoadedModel] = OrderedDict()
_cache_lock = threading.Lock()


class RowsInvalid(Exception):
    """The rows cannot be scored; the text says which row and column, and why."""


class ModelUnavailable(Exception):
    """The model's files are missing from the datastore or cannot be loaded."""


@dataclass
class LoadedModel:
    """A model's scoring process; one request at a time talks to it."""

    process: subprocess.Popen[str]
    folder: Path
    feature_columns: list[str]
    settings: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except OSError:
            raise ModelUnavailable("the model's scoring process has ended") from None
        return self.answer(timeout_s)

    def answer(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout_s):
                raise ModelUnavailable(f"the model did not answer within {timeout_s:g} s")
        line = self.process.stdout.readline()
        if not line:
            raise ModelUnavailable("the model's scoring process has ended")
        return json.loads(line)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # its signal to end
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def predict(artifact: Artifact, rows: Any) -> list[Any]:
    """The model's predictions for `rows`: objects of feature -> value, or lists of values in
    the model's feature order. Raises RowsInvalid or ModelUnavailable."""
    model = loaded_model(artifact)
    matrix = feature_matrix(rows, model.feature_columns)
    with model.lock:
        try:
            reply = model.ask({"rows": matrix}, PREDICT_TIMEOUT_S)
        except ModelUnavailable:
            _forget(artifact.digest, model)  # the next request starts a fresh process
            raise
    if "error" in reply:
        raise ModelUnavailable(reply["error"])
    return reply["predictions"]


def loaded_model(artifact: Artifact) -> LoadedModel:
    """The artifact's model, its process started on first use in this server process."""
    with _cache_lock:  # held while starting, so a model gets one process
        model = _cache.get(artifact.digest)
        if model is None:
            model = _start(artifact)
            _cache[artifact.digest] = model
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)[1].stop()
        _cache.move_to_end(artifact.digest)
        return model


def stop_all() -> None:
    """Stop every model process (tests; the processes also end with the server)."""
    with _cache_lock:
        models = list(_cache.values())
        _cache.clear()
    for model in models:
        model.stop()


def _forget(digest: str, model: LoadedModel) -> None:
    with _cache_lock:
        if _cache.get(digest) is model:
            del _cache[digest]
    model.stop()


def _start(artifact: Artifact) -> LoadedModel:
    settings = _read_settings(artifact)
    features = settings.get("feature_columns") if isinstance(settings, dict) else None
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ModelUnavailable("the model's settings.json names no feature_columns")
    root = Path(django_settings.VAR_DIR) / "scoring"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="model-", dir=root))
    try:
        _copy_model_file(artifact, folder / "model.joblib")
        process = subprocess.Popen(
            [sys.executable, "-m", "runner.scoring", str(folder / "model.joblib")],
            cwd=folder, env=_environment(folder), text=True, encoding="utf-8",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    model = LoadedModel(process, folder, features, settings)
    try:
        ready = model.answer(LOAD_TIMEOUT_S)
    except ModelUnavailable:
        model.stop()
        raise
    if "error" in ready:
        model.stop()
        raise ModelUnavailable(ready["error"])
    return model


def _files_missing(artifact: Artifact) -> str:
    # Named by digest: the error's own text holds the storage location (S16).
    return f"the model's files are not in the datastore (artifact {artifact.digest})"


def _read_settings(artifact: Artifact) -> Any:
    try:
        with open_artifact(artifact, "settings.json").file as handle:
            return json.load(handle)  # plain JSON: safe to read here
    except FileNotFoundError:
        raise ModelUnavailable(_files_missing(artifact)) from None
    except ValueError as exc:
        raise ModelUnavailable(f"the model's settings.json is not JSON: {exc}") from None


def _copy_model_file(artifact: Artifact, destination: Path) -> None:
    try:
        with open_artifact(artifact, "model.joblib").file as source, \
                open(destination, "wb") as target:
            shutil.copyfileobj(source, target)
    except FileNotFoundError:
        raise ModelUnavailable(_files_missing(artifact)) from None


def _environment(folder: Path) -> dict[str, str]:
    """From an allowlist, like a step's: the server's secrets never reach the model's code."""
    env = {name: os.environ[name] for name in ALLOWED_ENV if name in os.environ}
    env.update(HOME=str(folder), TMPDIR=str(folder), PYTHONUNBUFFERED="1")
    return env


def feature_matrix(rows: Any, features: list[str]) -> list[list[float]]:
    """Rows as numbers in the model's feature order, or RowsInvalid naming the problem."""
    if not isinstance(rows, list) or not rows:
        raise RowsInvalid("rows must be a non-empty list; each row an object of feature: "
                          "value or a list of values in the model's feature order")
    if len(rows) > MAX_ROWS:
        raise RowsInvalid(f"{len(rows)} rows is more than the limit of {MAX_ROWS} per request")
    return [_row_values(number, row, features) for number, row in enumerate(rows)]


def _row_values(number: int, row: Any, features: list[str]) -> list[float]:
    if isinstance(row, dict):
        missing = [name for name in features if name not in row]
        unknown = [str(name) for name in row if name not in features]
        if missing or unknown:
            problems = ([f"lacks {', '.join(missing)}"] if missing else []) + \
                       ([f"has unknown columns {', '.join(unknown)}"] if unknown else [])
            raise RowsInvalid(f"row {number} {' and '.join(problems)}; the model takes "
                              f"{', '.join(features)}")
        values = [row[name] for name in features]
    elif isinstance(row, list):
        if len(row) != len(features):
            raise RowsInvalid(f"row {number} has {len(row)} values; the model takes "
                              f"{len(features)}: {', '.join(features)}")
        values = row
    else:
        raise RowsInvalid(f"row {number} is neither an object nor a list")
    return [_number(number, name, value) for name, value in zip(features, values, strict=True)]


def _number(number: int, column: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise RowsInvalid(f"row {number}, column {column!r}: {json.dumps(value)} is not a "
                          "number; features must be numbers")
    return float(value)
