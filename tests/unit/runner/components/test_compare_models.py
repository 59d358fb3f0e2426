"""compare-models passes on the better of two models by their evaluate metrics."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Step

    from runner.messages import ArtifactRef


def candidate(step: Step, estimator: str, task: str,
              metrics: dict[str, float]) -> tuple[ArtifactRef, ArtifactRef]:
    model = step.publish_text({"model.joblib": f"a fitted {estimator}",
                               "settings.json": json.dumps({"estimator": estimator})})
    report = step.publish_text({"metrics.json": json.dumps(
        {"task": task, "estimator": estimator, "metrics": metrics})})
    return model, report


def inputs(a: tuple[ArtifactRef, ArtifactRef],
           b: tuple[ArtifactRef, ArtifactRef]) -> dict[str, Any]:
    return {"model_a": a[0], "metrics_a": a[1], "model_b": b[0], "metrics_b": b[1]}


def test_it_passes_on_the_model_with_the_lower_error(step: Step) -> None:
    a = candidate(step, "automl", "regression", {"rmse": 55.0, "r2": 0.45})
    b = candidate(step, "ridge", "regression", {"rmse": 52.5, "r2": 0.50})
    result, sink = step.ok("compare-models@1", {"metric": "rmse"}, inputs(a, b))
    assert result.outputs["best"]["digest"] == b[0]["digest"]
    assert result.outputs["metrics"]["digest"] == b[1]["digest"]  # the winner's, unchanged
    comparison = json.loads((step.fetch(result.outputs["comparison"])
                             / "comparison.json").read_text())
    assert comparison == {"metric": "rmse", "lower_is_better": True, "best": "b",
                          "scores": {"a": 55.0, "b": 52.5},
                          "estimators": {"a": "automl", "b": "ridge"}}
    assert sink.metric_values("best_rmse") == [52.5]


def test_auto_judges_a_classifier_by_accuracy_and_a_tie_goes_to_the_first(step: Step) -> None:
    a = candidate(step, "svc", "classification", {"accuracy": 0.9, "f1": 0.8})
    b = candidate(step, "knn", "classification", {"accuracy": 0.9, "f1": 0.95})
    result, _ = step.ok("compare-models@1", {}, inputs(a, b))
    assert result.outputs["best"]["digest"] == a[0]["digest"]


def test_a_missing_metric_or_different_tasks_fail(step: Step) -> None:
    a = candidate(step, "ridge", "regression", {"rmse": 1.0})
    b = candidate(step, "svc", "classification", {"accuracy": 0.9})
    assert step.failed("compare-models@1", {}, inputs(a, a)) == (
        "metrics_a has no 'r2'; it has rmse")
    assert step.failed("compare-models@1", {}, inputs(a, b)).startswith(
        "the models do different tasks")
