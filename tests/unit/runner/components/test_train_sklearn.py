"""train-sklearn fits a chosen estimator and saves it with its settings."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import joblib
import pytest

from runner.components import STEPS_DIR
from runner.components.train_sklearn import ESTIMATOR_NAMES

if TYPE_CHECKING:
    from conftest import Step


def test_the_schema_lists_the_estimators_the_step_knows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(STEPS_DIR))
    monkeypatch.delitem(sys.modules, "steplib", raising=False)
    import steplib

    assert list(ESTIMATOR_NAMES) == list(steplib.ESTIMATORS)


def test_it_trains_a_classifier_with_hyperparameters(step: Step) -> None:
    data = step.publish_dataset("breast_cancer", 120)
    params = {"estimator": "random_forest", "hyperparameters": {"n_estimators": 5,
                                                                "random_state": 0}}
    result, sink = step.ok("train-sklearn@1", params, {"data": data})
    folder = step.fetch(result.outputs["model"])
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["task"] == "classification" and settings["classes"] == [0, 1]
    assert settings["hyperparameters"] == {"n_estimators": 5, "random_state": 0}
    assert len(settings["feature_columns"]) == 30 and settings["target_column"] == "target"
    model = joblib.load(folder / "model.joblib")
    assert model.n_estimators == 5
    assert sink.metric_values("train_score")[0] > 0.9


def test_it_trains_a_regressor_on_chosen_features(step: Step) -> None:
    data = step.publish_dataset("diabetes", 80)
    params = {"estimator": "ridge", "feature_columns": ["bmi", "bp"],
              "hyperparameters": {"alpha": 0.5}}
    result, _ = step.ok("train-sklearn@1", params, {"data": data})
    settings = json.loads((step.fetch(result.outputs["model"]) / "settings.json").read_text())
    assert (settings["task"], settings["feature_columns"]) == ("regression", ["bmi", "bp"])


def test_an_unknown_estimator_fails_with_the_known_ones(step: Step) -> None:
    data = step.publish_table([["x", "target"], [1, 0], [2, 1]])
    message = step.failed("train-sklearn@1", {"estimator": "xgboost"}, {"data": data})
    assert message.startswith("unknown estimator 'xgboost'; known: linear_regression, ridge")


def test_a_missing_target_column_names_the_columns(step: Step) -> None:
    data = step.publish_table([["a", "b", "c"], [1, 2, 3], [4, 5, 6]])
    message = step.failed("train-sklearn@1", {"estimator": "ridge"}, {"data": data})
    assert message == "column 'target' not found in input 'data'; columns: a, b, c"


def test_an_empty_table_fails(step: Step) -> None:
    data = step.publish_table([["a", "target"]])
    message = step.failed("train-sklearn@1", {"estimator": "ridge"}, {"data": data})
    assert message == "input 'data' has 0 rows; at least 2 needed"


@pytest.mark.parametrize(("params", "expected"), [
    ({"estimator": "random_forest", "hyperparameters": {"n_trees": 5}},
     "bad hyperparameters for random_forest: "),
    ({"estimator": "random_forest", "hyperparameters": {"n_estimators": -1}},
     "cannot train random_forest: The 'n_estimators' parameter"),
    ({"estimator": "logistic_regression", "task": "regression"},
     "estimator 'logistic_regression' does not do regression; for regression use one of "),
])
def test_bad_settings_fail_with_what_is_wrong(step: Step, params: dict, expected: str) -> None:
    data = step.publish_table([["x", "target"], [1.0, 0.5], [2.0, 1.5], [3.0, 2.0]])
    assert step.failed("train-sklearn@1", params, {"data": data}).startswith(expected)


def test_text_features_and_missing_values_are_named(step: Step) -> None:
    text = step.publish_table([["x", "colour", "target"], [1, "red", 0], [2, "blue", 1]])
    message = step.failed("train-sklearn@1", {"estimator": "svc"}, {"data": text})
    assert message == ("column 'colour' of input 'data' is not numeric (value 'red'); "
                       "features must be numbers")
    gaps = step.publish_table([["x", "target"], [1, 0], ["", 1], [3, 1]])
    message = step.failed("train-sklearn@1", {"estimator": "svc"}, {"data": gaps})
    assert message == "column 'x' of input 'data' has 1 missing values"
