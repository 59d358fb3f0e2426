"""automl: random search over estimators and hyperparameters, scored by cross-validation."""

import json
import math
import random
import time
import warnings
from typing import Any

import numpy as np
import steplib

from runner import context

# metric -> (scikit-learn scorer, its sign: the scorer gives -rmse, the leaderboard rmse)
SCORERS = {
    "accuracy": ("accuracy", 1), "f1": ("f1", 1), "roc_auc": ("roc_auc", 1),
    "r2": ("r2", 1), "rmse": ("neg_root_mean_squared_error", -1),
    "mae": ("neg_mean_absolute_error", -1),
}
TASK_METRICS = {"classification": ("accuracy", "f1", "roc_auc"),
                "regression": ("r2", "rmse", "mae")}

# Where each estimator's hyperparameters are drawn from: a list to pick from, or
# ("log", low, high) for a number spread evenly in log scale.
SPACES = {
    "linear_regression": {},
    "ridge": {"alpha": ("log", 1e-3, 1e3)},
    "lasso": {"alpha": ("log", 1e-4, 10.0)},
    "elastic_net": {"alpha": ("log", 1e-4, 10.0), "l1_ratio": [0.1, 0.3, 0.5, 0.7, 0.9]},
    "logistic_regression": {"C": ("log", 1e-3, 1e3), "max_iter": [1000]},
    "decision_tree": {"max_depth": [2, 3, 4, 6, 8, None], "min_samples_leaf": [1, 2, 5, 10]},
    "random_forest": {"n_estimators": [50, 100, 200], "max_depth": [3, 5, 8, None],
                      "min_samples_leaf": [1, 2, 5], "max_features": ["sqrt", 0.5, 1.0]},
    "extra_trees": {"n_estimators": [50, 100, 200], "max_depth": [3, 5, 8, None],
                    "min_samples_leaf": [1, 2, 5]},
    "gradient_boosting": {"n_estimators": [50, 100, 200], "learning_rate": ("log", 0.01, 0.3),
                          "max_depth": [2, 3, 4], "subsample": [0.7, 1.0]},
    "hist_gradient_boosting": {"learning_rate": ("log", 0.01, 0.3), "max_iter": [50, 100, 200],
                               "max_leaf_nodes": [15, 31, 63],
                               "l2_regularization": [0.0, 0.1, 1.0]},
    "knn": {"n_neighbors": [3, 5, 7, 11, 15, 25], "weights": ["uniform", "distance"]},
    "svc": {"C": ("log", 1e-2, 1e2), "gamma": ["scale", "auto"], "probability": [True]},
    "svr": {"C": ("log", 1e-2, 1e3), "gamma": ["scale", "auto"], "epsilon": [0.01, 0.1, 1.0]},
}
# Estimators with randomness of their own get the step's seed, so a search can be repeated.
SEEDED = {"decision_tree", "random_forest", "extra_trees", "gradient_boosting",
          "hist_gradient_boosting", "svc"}


def draw(space: dict, rng: random.Random) -> dict[str, Any]:
    """One point of a hyperparameter space."""
    point = {}
    for name, choices in space.items():
        if isinstance(choices, tuple):
            _, low, high = choices
            point[name] = float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.4g}")
        else:
            point[name] = rng.choice(choices)
    return point


def choose_metric(metric: str, task: str, classes: int) -> tuple[str, str, int]:
    """The metric's name, scikit-learn scorer and sign, checked against the task."""
    if metric == "auto":
        metric = "accuracy" if task == "classification" else "r2"
    if metric not in TASK_METRICS[task]:
        raise steplib.StepFailure(f"metric {metric!r} does not suit {task}; use one of "
                                  f"{', '.join(TASK_METRICS[task])}")
    scorer, sign = SCORERS[metric]
    if classes > 2 and metric in ("f1", "roc_auc"):
        scorer = {"f1": "f1_macro", "roc_auc": "roc_auc_ovr"}[metric]
    return metric, scorer, sign


class Search:
    """The trials of one search: what to try next, and how each one scored."""

    def __init__(self, X: Any, y: Any, task: str, scorer: str, sign: int, folds: int,
                 seed: int) -> None:
        from sklearn.model_selection import KFold, StratifiedKFold

        self.X, self.y, self.task, self.scorer, self.sign = X, y, task, scorer, sign
        self.splitter = (StratifiedKFold if task == "classification" else KFold)(
            n_splits=folds, shuffle=True, random_state=seed)
        self.seed, self.rng = seed, random.Random(seed)
        self.trials: list[dict[str, Any]] = []
        self.last_seconds: dict[str, float] = {}

    def next_point(self, candidates: list[str], remaining: float) -> tuple[str, dict] | None:
        """Each estimator's defaults first, then random points of estimators whose last trial
        would still end within the remaining time; None when none would."""
        number = len(self.trials) + 1
        if number <= len(candidates):
            name, hyperparameters = candidates[number - 1], {}
        else:
            fitting = [n for n in candidates if self.last_seconds[n] <= remaining]
            if not fitting:
                return None
            name = self.rng.choice(fitting)
            hyperparameters = draw(SPACES[name], self.rng)
        if name in SEEDED:
            hyperparameters["random_state"] = self.seed
        return name, hyperparameters

    def run_trial(self, name: str, hyperparameters: dict) -> dict[str, Any]:
        """Cross-validate one point; a point that raises is recorded with its error."""
        from sklearn.model_selection import cross_val_score

        trial = {"trial": len(self.trials) + 1, "estimator": name,
                 "hyperparameters": hyperparameters, "error": ""}
        started = time.monotonic()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter, once per fold
                scores = self.sign * cross_val_score(
                    steplib.make_estimator(name, self.task, hyperparameters), self.X, self.y,
                    cv=self.splitter, scoring=self.scorer, error_score="raise")
            trial.update(score=float(np.mean(scores)), score_std=float(np.std(scores)))
        except (ValueError, TypeError, steplib.StepFailure) as exc:
            trial.update(score=math.nan, score_std=math.nan, error=str(exc).splitlines()[0])
        trial["seconds"] = self.last_seconds[name] = time.monotonic() - started
        self.trials.append(trial)
        return trial

    def ranked(self) -> list[dict[str, Any]]:
        """Best first: higher scores, or lower errors; failed trials last."""
        return sorted(self.trials, key=lambda t: (
            bool(t["error"]), 0.0 if t["error"] else -self.sign * t["score"], t["trial"]))


def main() -> None:
    params = steplib.params()
    table = steplib.read_table("data")
    folds = params["cv_folds"]
    table.require_rows(folds)
    target_column = params["target_column"]
    features = steplib.feature_columns(table, target_column, [])
    task = steplib.infer_task(params["task"], table.column(target_column))
    y = steplib.check_target(table, target_column, task)
    X = table.matrix(features)
    classes = len(set(y.tolist())) if task == "classification" else 0
    metric, scorer, sign = choose_metric(params["metric"], task, classes)
    candidates = params["estimators"] or steplib.estimators_for(task)
    unsuited = [name for name in candidates if name not in steplib.estimators_for(task)]
    if unsuited:
        raise steplib.StepFailure(f"estimators {', '.join(unsuited)} do not do {task}; for "
                                  f"{task} use {', '.join(steplib.estimators_for(task))}")
    budget = float(params["time_budget_s"])
    print(f"{task}: optimising {metric} with {folds}-fold cross-validation over "
          f"{', '.join(candidates)}; budget {budget:g} s")

    search = Search(X, y, task, scorer, sign, folds, params["seed"])
    started = time.monotonic()
    while len(search.trials) < params["max_trials"]:
        remaining = budget - (time.monotonic() - started)
        point = search.next_point(candidates, remaining)
        if point is None or (search.trials and remaining <= 0):
            break
        trial = search.run_trial(*point)
        shown = f"trial {trial['trial']}: {point[0]} {json.dumps(point[1])}"
        if trial["error"]:
            print(f"{shown} failed: {trial['error']}")
            continue
        context.log_metric("trial_score", trial["score"], step=trial["trial"])
        context.log_metric("best_score", search.ranked()[0]["score"], step=trial["trial"])
        print(f"{shown} {metric} {trial['score']:.4f} ± {trial['score_std']:.4f} "
              f"({trial['seconds']:.2f} s)")

    ranked = search.ranked()
    best = ranked[0]
    if best["error"]:
        raise steplib.StepFailure(f"all {len(ranked)} trials failed; the first: "
                                  f"{search.trials[0]['error']}")
    model = steplib.make_estimator(best["estimator"], task, best["hyperparameters"])
    model.fit(X, y)
    settings = {
        "estimator": best["estimator"], "task": task, "hyperparameters": best["hyperparameters"],
        "target_column": target_column, "feature_columns": features,
        "classes": sorted(set(y.tolist())) if task == "classification" else None,
        "train_rows": table.rows, "metric": metric, "cv_score": best["score"],
        "cv_score_std": best["score_std"], "cv_folds": folds, "trials": len(ranked),
        "seed": params["seed"], "time_budget_s": budget,
        "search_seconds": round(time.monotonic() - started, 3),
    }
    steplib.save_model(context.output_path("model"), model, settings)
    steplib.write_json(context.output_path("settings") / "settings.json", settings)
    steplib.write_table(context.output_path("leaderboard") / "leaderboard.csv", {
        "rank": list(range(1, len(ranked) + 1)),
        "trial": [t["trial"] for t in ranked],
        "estimator": [t["estimator"] for t in ranked],
        metric: [t["score"] for t in ranked],
        f"{metric}_std": [t["score_std"] for t in ranked],
        "seconds": [round(t["seconds"], 4) for t in ranked],
        "hyperparameters": [json.dumps(t["hyperparameters"], sort_keys=True) for t in ranked],
        "error": [t["error"] for t in ranked],
    })
    print(f"best of {len(ranked)} trials: {best['estimator']} "
          f"{json.dumps(best['hyperparameters'])} {metric} {best['score']:.4f}")


if __name__ == "__main__":
    steplib.run(main)
