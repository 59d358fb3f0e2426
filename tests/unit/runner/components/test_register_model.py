"""register-model checks the model, logs its evaluation's metrics and passes the model on."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sklearn.linear_model import LinearRegression

if TYPE_CHECKING:
    from conftest import Step


def test_it_logs_the_evaluation_metrics_and_passes_the_same_model_on(step: Step) -> None:
    rows = step.dataset_rows("diabetes", 60)
    model = step.publish_fitted(LinearRegression(), "linear_regression", rows, "regression")
    metrics = step.publish_text({"metrics.json": json.dumps(
        {"task": "regression", "metrics": {"rmse": 52.5, "r2": 0.5, "note": "text"}})})
    result, sink = step.ok("register-model@1", {"name": "diabetes"},
                           {"model": model, "metrics": metrics})
    assert result.outputs["model"]["digest"] == model["digest"]
    assert {key: value for key, value, _ in sink.metrics} == {"rmse": 52.5, "r2": 0.5}


def test_the_metrics_input_is_optional(step: Step) -> None:
    rows = step.dataset_rows("diabetes", 60)
    model = step.publish_fitted(LinearRegression(), "linear_regression", rows, "regression")
    result, sink = step.ok("register-model@1", {"name": "diabetes"}, {"model": model})
    assert result.outputs["model"]["digest"] == model["digest"] and sink.metrics == []


def test_something_that_is_not_a_model_fails_with_a_sentence(step: Step) -> None:
    table = step.publish_table([["x"], [1]])
    message = step.failed("register-model@1", {"name": "diabetes"}, {"model": table})
    assert message.startswith("input 'model' is not a model: it needs model.joblib")


def test_metrics_without_numbers_fail_with_a_sentence(step: Step) -> None:
    rows = step.dataset_rows("diabetes", 60)
    model = step.publish_fitted(LinearRegression(), "linear_regression", rows, "regression")
    bad = step.publish_text({"metrics.json": json.dumps({"rmse": 3})})
    message = step.failed("register-model@1", {"name": "diabetes"},
                          {"model": model, "metrics": bad})
    assert message == "input 'metrics' has no \"metrics\" object (from evaluate)"
