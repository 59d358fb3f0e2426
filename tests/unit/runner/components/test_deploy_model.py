"""deploy-model proves that the model loads and scores before the server deploys it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sklearn.linear_model import LinearRegression

if TYPE_CHECKING:
    from conftest import Step


def test_a_working_model_scores_a_row_of_zeros(step: Step) -> None:
    rows = step.dataset_rows("diabetes", 60)
    model = step.publish_fitted(LinearRegression(), "linear_regression", rows, "regression")
    _, sink = step.ok("deploy-model@1", {"name": "diabetes"}, {"model": model})
    [line] = sink.texts("stdout")
    assert line.startswith("model 'diabetes' scores rows of 10 features (age, sex, bmi")


def test_a_model_that_cannot_be_loaded_is_not_deployed(step: Step) -> None:
    broken = step.publish_text({"model.joblib": "not a pickle",
                                "settings.json": '{"feature_columns": ["x"]}'})
    message = step.failed("deploy-model@1", {"name": "diabetes"}, {"model": broken})
    assert message.startswith("the model cannot be loaded: ")


def test_a_model_without_feature_columns_fails_with_a_sentence(step: Step) -> None:
    model = step.publish_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]),
                               {"estimator": "linear_regression", "task": "regression"})
    message = step.failed("deploy-model@1", {"name": "diabetes"}, {"model": model})
    assert message.startswith("the model's settings.json names no feature_columns")
