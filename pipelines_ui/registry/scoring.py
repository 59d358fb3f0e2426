"""Scoring rows with a deployed model version, in the web server's own process.

A model is loaded from its artifact (model.joblib and settings.json, as train-sklearn and
automl write them) once per process and kept by digest, so each request only checks its rows
and predicts. Loading a joblib file runs its pickle: deploy only models from your own steps.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pipelines_ui.data.models import Artifact
from pipelines_ui.data.services import open_artifact

MAX_ROWS = 10_000  # per request; larger tables belong in a parallel-run step
CACHE_SIZE = 8  # models kept per process, the least recently used dropped first

_cache: OrderedDict[str, LoadedModel] = OrderedDict()
_cache_lock = threading.Lock()


class RowsInvalid(Exception):
    """The rows cannot be scored; the text says which row and column, and why."""


class ModelUnavailable(Exception):
    """The model's files are missing from the datastore or cannot be loaded."""


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    feature_columns: list[str]
    settings: dict[str, Any]


def predict(artifact: Artifact, rows: Any) -> list[Any]:
    """The model's predictions for `rows`: objects of feature -> value, or lists of values in
    the model's feature order. Raises RowsInvalid or ModelUnavailable."""
    model = loaded_model(artifact)
    matrix = feature_matrix(rows, model.feature_columns)
    import numpy as np

    return model.estimator.predict(np.array(matrix, dtype=float)).tolist()


def loaded_model(artifact: Artifact) -> LoadedModel:
    """The artifact's model, loaded on first use in this process."""
    with _cache_lock:  # held while loading, so one process loads a model once
        model = _cache.get(artifact.digest)
        if model is None:
            model = _load(artifact)
            _cache[artifact.digest] = model
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        _cache.move_to_end(artifact.digest)
        return model


def _load(artifact: Artifact) -> LoadedModel:
    import joblib

    try:
        with open_artifact(artifact, "settings.json").file as handle:
            settings = json.load(handle)
        with open_artifact(artifact, "model.joblib").file as handle:
            estimator = joblib.load(handle)
    except FileNotFoundError as exc:
        raise ModelUnavailable(f"the model's files are not in the datastore: {exc}") from None
    except Exception as exc:  # a pickle can fail in any way: another scikit-learn, a bad file
        raise ModelUnavailable(f"the model cannot be loaded: {exc}") from None
    features = settings.get("feature_columns") if isinstance(settings, dict) else None
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ModelUnavailable("the model's settings.json names no feature_columns")
    return LoadedModel(estimator, features, settings)


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
