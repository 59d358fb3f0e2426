"""Helpers shared by the built-in components' step scripts.

This file travels with each built-in component's job as `steplib.py`, next to its `main.py`,
and runs in the step's own interpreter: the standard library, `runner.context` and (for tables)
numpy only. A step that meets bad input calls `fail()`, so the person who ran it reads one
sentence, as the last line of stderr, instead of a traceback.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from runner import context

FAILED_EXIT_CODE = 2
TASKS = ("classification", "regression")


class StepFailure(Exception):
    """Bad input or parameters; the text is meant for the person who ran the step."""


def fail(message: str) -> NoReturn:
    """End the step: `message` becomes the last line of stderr, the exit code 2."""
    print(message, file=sys.stderr, flush=True)
    sys.exit(FAILED_EXIT_CODE)


def run(main: Callable[[], None]) -> None:
    """Call `main()`, turning a StepFailure (or a port it was not given) into a clean failure."""
    try:
        main()
    except (StepFailure, context.MissingPortError) as exc:
        fail(str(exc))


def params() -> dict[str, Any]:
    """The step's parameters, with the defaults of the shipped params_schema.json filled in."""
    schema_file = Path(__file__).with_name("params_schema.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8")) if schema_file.exists() else {}
    values = {name: prop["default"] for name, prop in schema.get("properties", {}).items()
              if "default" in prop}
    values.update(context.params())
    return values


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# --- Tables ---------------------------------------------------------------------------------
#
# A table is a CSV file with a header row. A table port holds that file alone, or a folder
# with exactly one .csv file in it.


def table_file(port: str) -> Path:
    """The CSV file of input `port`."""
    path = context.input_path(port)
    if path.is_file():
        return path
    found = sorted(p for p in path.rglob("*.csv") if p.is_file()) if path.is_dir() else []
    if not found:
        raise StepFailure(f"input {port!r} holds no .csv file; a table is a CSV file "
                          "with a header row")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(path)) for p in found)
        raise StepFailure(f"input {port!r} holds {len(found)} .csv files ({names}); "
                          "a table port takes one")
    return found[0]


class Table:
    """Named columns of equal length: numbers (int64 or float64 arrays) or text."""

    def __init__(self, columns: dict[str, Any], name: str = "table") -> None:
        self.columns, self.name = columns, name

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name: str) -> Any:
        if name not in self.columns:
            raise StepFailure(f"column {name!r} not found in {self.name}; "
                              f"columns: {', '.join(self.names)}")
        return self.columns[name]

    def require_rows(self, at_least: int = 1) -> None:
        if self.rows < at_least:
            raise StepFailure(f"{self.name} has {self.rows} rows; at least {at_least} needed")

    def matrix(self, names: list[str]) -> Any:
        """The named columns as a float matrix; every one must be numeric and complete."""
        import numpy as np

        missing = [n for n in names if n not in self.columns]
        if missing:
            raise StepFailure(f"{self.name} lacks the columns {', '.join(missing)}; "
                              f"columns: {', '.join(self.names)}")
        for name in names:
            values = self.columns[name]
            if values.dtype.kind not in "if":
                bad = next(v for v in values if _number(v) is None)
                raise StepFailure(f"column {name!r} of {self.name} is not numeric "
                                  f"(value {bad!r}); features must be numbers")
            if values.dtype.kind == "f" and np.isnan(values).any():
                raise StepFailure(f"column {name!r} of {self.name} has "
                                  f"{int(np.isnan(values).sum())} missing values")
        return np.column_stack([self.columns[n].astype(float) for n in names]) \
            if names else np.empty((self.rows, 0))

    def take(self, indices: Any) -> Table:
        return Table({name: values[indices] for name, values in self.columns.items()}, self.name)


def read_table(port: str) -> Table:
    """Input `port` as a Table; an empty or malformed file fails the step."""
    path = table_file(port)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise StepFailure(f"input {port!r} ({path.name}) is empty: no header row")
        rows = list(reader)
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise StepFailure(f"input {port!r} repeats the columns {', '.join(duplicates)}")
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise StepFailure(f"input {port!r} line {number} has {len(row)} fields; "
                              f"the header has {len(header)}")
    columns = {name: parse_column([row[i] for row in rows]) for i, name in enumerate(header)}
    return Table(columns, name=f"input {port!r}")


def parse_column(texts: list[str]) -> Any:
    """Integers, else numbers (empty or "nan" is a missing number), else text."""
    import numpy as np

    try:
        return np.array([int(t) for t in texts], dtype=np.int64)
    except ValueError:
        pass
    numbers = [_number(t) for t in texts]
    if all(n is not None for n in numbers):
        return np.array(numbers, dtype=float)
    return np.array(texts, dtype=object)


def _number(text: Any) -> float | None:
    if isinstance(text, str) and text.strip().lower() in ("", "nan", "na", "null"):
        return math.nan
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def write_table(path: Path, columns: dict[str, Any]) -> None:
    """Write named columns (arrays or lists of equal length) as a CSV file."""
    names = list(columns)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows(zip(*(format_column(columns[n]) for n in names), strict=True))


def format_column(values: Any) -> list[str]:
    return [format_value(v) for v in values]


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        number = float(value)
        return "" if math.isnan(number) else repr(number)
    if type(value).__name__.startswith(("int", "uint")):
        return str(int(value))
    if type(value).__name__ == "bool_":
        return str(bool(value))
    return str(value)


# --- Models ---------------------------------------------------------------------------------
#
# A model port holds model.joblib (a fitted scikit-learn estimator or pipeline) and
# settings.json: task, target_column, feature_columns, estimator, hyperparameters, classes.

# name -> (scikit-learn class for classification, for regression, scale features first)
ESTIMATORS: dict[str, tuple[str | None, str | None, bool]] = {
    "linear_regression": (None, "sklearn.linear_model.LinearRegression", True),
    "ridge": ("sklearn.linear_model.RidgeClassifier", "sklearn.linear_model.Ridge", True),
    "lasso": (None, "sklearn.linear_model.Lasso", True),
    "elastic_net": (None, "sklearn.linear_model.ElasticNet", True),
    "logistic_regression": ("sklearn.linear_model.LogisticRegression", None, True),
    "decision_tree": ("sklearn.tree.DecisionTreeClassifier",
                      "sklearn.tree.DecisionTreeRegressor", False),
    "random_forest": ("sklearn.ensemble.RandomForestClassifier",
                      "sklearn.ensemble.RandomForestRegressor", False),
    "extra_trees": ("sklearn.ensemble.ExtraTreesClassifier",
                    "sklearn.ensemble.ExtraTreesRegressor", False),
    "gradient_boosting": ("sklearn.ensemble.GradientBoostingClassifier",
                          "sklearn.ensemble.GradientBoostingRegressor", False),
    "hist_gradient_boosting": ("sklearn.ensemble.HistGradientBoostingClassifier",
                               "sklearn.ensemble.HistGradientBoostingRegressor", False),
    "knn": ("sklearn.neighbors.KNeighborsClassifier",
            "sklearn.neighbors.KNeighborsRegressor", True),
    "svc": ("sklearn.svm.SVC", None, True),
    "svr": (None, "sklearn.svm.SVR", True),
}


def estimators_for(task: str) -> list[str]:
    return [name for name, classes in ESTIMATORS.items()
            if classes[TASKS.index(task)] is not None]


def make_estimator(name: str, task: str, hyperparameters: dict[str, Any]) -> Any:
    """A fresh scikit-learn estimator (with a scaler first where it helps)."""
    import importlib

    if name not in ESTIMATORS:
        raise StepFailure(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
    path = ESTIMATORS[name][TASKS.index(task)]
    if path is None:
        raise StepFailure(f"estimator {name!r} does not do {task}; for {task} use one of "
                          f"{', '.join(estimators_for(task))}")
    module, _, cls_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), cls_name)
    try:
        estimator = cls(**hyperparameters)
    except TypeError as exc:
        raise StepFailure(f"bad hyperparameters for {name}: {exc}") from exc
    if not ESTIMATORS[name][2]:
        return estimator
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), estimator)


def infer_task(task: str, target: Any) -> str:
    """"auto": classification for a text or integer target, regression for other numbers."""
    if task != "auto":
        return task
    return "regression" if target.dtype.kind == "f" else "classification"


def feature_columns(table: Table, target_column: str, chosen: list[str]) -> list[str]:
    table.column(target_column)
    if chosen:
        for name in chosen:
            table.column(name)
        if target_column in chosen:
            raise StepFailure(f"the target column {target_column!r} is also a feature column")
        return list(chosen)
    features = [name for name in table.names if name != target_column]
    if not features:
        raise StepFailure(f"{table.name} has no feature columns besides {target_column!r}")
    return features


def check_target(table: Table, target_column: str, task: str) -> Any:
    """The target column, checked to suit the task."""
    import numpy as np

    target = table.column(target_column)
    if target.dtype.kind == "f" and np.isnan(target).any():
        raise StepFailure(f"target column {target_column!r} has "
                          f"{int(np.isnan(target).sum())} missing values")
    if task == "regression" and target.dtype.kind not in "if":
        raise StepFailure(f"target column {target_column!r} is text; regression needs numbers "
                          "(use task classification)")
    if task == "classification" and len(set(target.tolist())) < 2:
        raise StepFailure(f"target column {target_column!r} has a single class; "
                          "classification needs at least two")
    return target


def save_model(folder: Path, model: Any, settings: dict[str, Any]) -> None:
    import joblib
    import sklearn

    joblib.dump(model, folder / "model.joblib")
    write_json(folder / "settings.json", {**settings, "sklearn_version": sklearn.__version__})


def model_settings(port: str) -> dict[str, Any]:
    """The settings.json of model input `port`, checked to be a model."""
    folder = context.input_path(port)
    if not (folder / "model.joblib").is_file() or not (folder / "settings.json").is_file():
        raise StepFailure(f"input {port!r} is not a model: it needs model.joblib and "
                          "settings.json (from train-sklearn or automl)")
    return json.loads((folder / "settings.json").read_text(encoding="utf-8"))


def load_model(port: str) -> tuple[Any, dict[str, Any]]:
    """The fitted model of input `port` and its settings."""
    import joblib

    settings = model_settings(port)
    return joblib.load(context.input_path(port) / "model.joblib"), settings


def pass_on(source: Path, output_port: str) -> None:
    """Make output `output_port` the very content of `source` (a file or a folder).

    The output becomes a link to the input: the executor digests and publishes what it points
    to, so the output has the input's digest and nothing is copied when that artifact exists.
    """
    target = context.output_path(output_port)
    target.rmdir()  # empty: the executor just made it
    target.symlink_to(source.resolve(), target_is_directory=source.is_dir())
