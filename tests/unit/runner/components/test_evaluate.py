"""evaluate scores a model on a test table: metrics, a metrics file and a plot."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

if TYPE_CHECKING:
    from conftest import Step

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_classifier_gets_accuracy_f1_roc_auc_and_a_confusion_matrix(step: Step) -> None:
    rows = step.dataset_rows("breast_cancer")
    classifier = make_pipeline(StandardScaler(), LogisticRegression())
    model = step.publish_fitted(classifier, "logistic_regression", rows[:400], "classification")
    inputs = {"model": model, "data": step.publish_table([rows[0], *rows[400:]])}
    result, sink = step.ok("evaluate@1", {"metric_prefix": "test_"}, inputs)
    report = json.loads((step.fetch(result.outputs["metrics"]) / "metrics.json").read_text())
    assert report["task"] == "classification" and report["rows"] == 170
    assert set(report["metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert report["metrics"]["roc_auc"] > 0.9
    assert sum(map(sum, report["confusion_matrix"])) == 170 and report["labels"] == [0, 1]
    logged = {key: value for key, value, _ in sink.metrics}
    assert logged == {f"test_{key}": value for key, value in report["metrics"].items()}
    plot = step.fetch(result.outputs["plot"]) / "confusion_matrix.png"
    assert plot.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.slow
def test_a_regressor_gets_rmse_mae_r2_and_a_residual_plot(step: Step) -> None:
    rows = step.dataset_rows("diabetes")
    model = step.publish_fitted(LinearRegression(), "linear_regression", rows[:300], "regression")
    inputs = {"model": model,
              "data": step.publish_table([rows[0], *rows[300:]])}
    result, sink = step.ok("evaluate@1", {}, inputs)
    report = json.loads((step.fetch(result.outputs["metrics"]) / "metrics.json").read_text())
    assert set(report["metrics"]) == {"rmse", "mae", "r2"}
    assert 0.3 < report["metrics"]["r2"] < 0.8 and report["metrics"]["rmse"] > 0
    assert {key for key, _, _ in sink.metrics} == {"rmse", "mae", "r2"}
    plot = step.fetch(result.outputs["plot"]) / "residuals.png"
    assert plot.read_bytes().startswith(PNG_SIGNATURE)


def test_a_test_table_without_the_target_column_fails(step: Step) -> None:
    rows = step.dataset_rows("diabetes", 50)
    model = step.publish_fitted(LinearRegression(), "linear_regression", rows, "regression")
    without_target = [row[:-1] for row in rows]
    message = step.failed("evaluate@1", {}, {"model": model,
                                              "data": step.publish_table(without_target)})
    assert message == ("column 'target' not found in input 'data'; columns: "
                       + ", ".join(rows[0][:-1]))


def test_an_empty_test_table_and_a_non_model_fail(step: Step) -> None:
    rows = step.dataset_rows("diabetes", 50)
    model = step.publish_fitted(LinearRegression(), "linear_regression", rows, "regression")
    message = step.failed("evaluate@1", {}, {"model": model,
                                              "data": step.publish_table([rows[0]])})
    assert message == "input 'data' has 0 rows; at least 1 needed"
    message = step.failed("evaluate@1", {}, {"model": step.publish_text({"a.txt": "x"}),
                                              "data": step.publish_table(rows)})
    assert message.startswith("input 'model' is not a model: it needs model.joblib")
