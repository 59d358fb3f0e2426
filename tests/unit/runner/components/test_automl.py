"""automl searches estimators and hyperparameters within a time budget."""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING

import pytest

from runner.components import STEPS_DIR

if TYPE_CHECKING:
    from conftest import Step


@pytest.mark.slow
def test_it_searches_logs_every_trial_and_outputs_the_best(step: Step) -> None:
    data = step.publish_dataset("diabetes", 150)
    params = {"estimators": ["ridge", "lasso", "decision_tree"], "metric": "rmse",
              "max_trials": 6, "cv_folds": 3, "time_budget_s": 30, "seed": 7}
    result, sink = step.ok("automl@1", params, {"data": data})
    leaderboard = step.read_table(result.outputs["leaderboard"])
    assert len(leaderboard) == 6
    scores = [float(row["rmse"]) for row in leaderboard]
    assert scores == sorted(scores)  # lower error first
    assert {row["estimator"] for row in leaderboard} >= {"ridge", "lasso", "decision_tree"}
    trial_points = [(value, step_) for key, value, step_ in sink.metrics if key == "trial_score"]
    assert [step_ for _, step_ in trial_points] == [1, 2, 3, 4, 5, 6]
    settings = json.loads((step.fetch(result.outputs["settings"]) / "settings.json").read_text())
    best = leaderboard[0]
    assert (settings["estimator"], settings["metric"], settings["task"]) == (
        best["estimator"], "rmse", "regression")
    assert settings["cv_score"] == pytest.approx(float(best["rmse"]))
    assert json.loads(best["hyperparameters"]) == settings["hyperparameters"]
    model = step.fetch(result.outputs["model"])
    assert (model / "model.joblib").is_file()
    assert json.loads((model / "settings.json").read_text())["estimator"] == best["estimator"]


@pytest.mark.slow
def test_it_respects_the_time_budget(step: Step) -> None:
    data = step.publish_dataset("breast_cancer", 200)
    params = {"estimators": ["random_forest", "logistic_regression"], "time_budget_s": 2,
              "max_trials": 1000, "cv_folds": 2, "metric": "roc_auc"}
    result, sink = step.ok("automl@1", params, {"data": data})
    settings = json.loads((step.fetch(result.outputs["settings"]) / "settings.json").read_text())
    assert settings["task"] == "classification" and settings["metric"] == "roc_auc"
    assert 2 <= settings["trials"] < 1000
    assert settings["search_seconds"] < 2 + 3  # no trial starts that would end past the budget
    assert len(sink.metric_values("trial_score")) == settings["trials"]


def test_a_missing_target_column_fails(step: Step) -> None:
    data = step.publish_table([["a", "b", "c"], *([i, i, i] for i in range(5))])
    message = step.failed("automl@1", {"target_column": "label"}, {"data": data})
    assert message == "column 'label' not found in input 'data'; columns: a, b, c"


def test_an_empty_table_fails(step: Step) -> None:
    data = step.publish_table([["a", "target"]])
    message = step.failed("automl@1", {}, {"data": data})
    assert message == "input 'data' has 0 rows; at least 3 needed"


def test_a_metric_that_does_not_suit_the_task_fails(step: Step) -> None:
    data = step.publish_table([["x", "target"], *([i, i % 2] for i in range(9))])
    message = step.failed("automl@1", {"metric": "rmse"}, {"data": data})
    assert message == "metric 'rmse' does not suit classification; use one of accuracy, f1, roc_auc"


def test_every_estimator_has_a_search_space(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(STEPS_DIR))
    spec = importlib.util.spec_from_file_location("automl_step", STEPS_DIR / "automl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.SPACES) == set(module.steplib.ESTIMATORS)
    assert module.SEEDED <= set(module.SPACES)
