"""compare-models: copy the better of two models to the output, by an evaluate metric."""

import json
import shutil
from pathlib import Path
from typing import Any

import steplib

from runner import context

LOWER_IS_BETTER = {"rmse", "mae"}


def read_metrics(port: str) -> dict[str, Any]:
    path = context.input_path(port)
    path = path / "metrics.json" if path.is_dir() else path
    if not path.is_file():
        raise steplib.StepFailure(f"input {port!r} holds no metrics.json (from evaluate)")
    return json.loads(path.read_text(encoding="utf-8"))


def main() -> None:
    params = steplib.params()
    reports = {side: read_metrics(f"metrics_{side}") for side in ("a", "b")}
    for side in reports:
        steplib.model_settings(f"model_{side}")
    tasks = {report.get("task") for report in reports.values()}
    if len(tasks) != 1:
        raise steplib.StepFailure(f"the models do different tasks ({', '.join(map(str, tasks))})")
    metric = params["metric"]
    if metric == "auto":
        metric = "accuracy" if tasks == {"classification"} else "r2"
    scores = {}
    for side, report in reports.items():
        if metric not in report.get("metrics", {}):
            known = ", ".join(report.get("metrics", {})) or "none"
            raise steplib.StepFailure(f"metrics_{side} has no {metric!r}; it has {known}")
        scores[side] = float(report["metrics"][metric])
    sign = -1 if metric in LOWER_IS_BETTER else 1
    best = "a" if sign * scores["a"] >= sign * scores["b"] else "b"
    source: Path = context.input_path(f"model_{best}")
    shutil.copytree(source, context.output_path("best"), dirs_exist_ok=True)
    steplib.pass_on(context.input_path(f"metrics_{best}"), "metrics")
    steplib.write_json(context.output_path("comparison") / "comparison.json", {
        "metric": metric, "lower_is_better": sign < 0, "scores": scores, "best": best,
        "estimators": {side: report.get("estimator") for side, report in reports.items()},
    })
    context.log_metric(f"best_{metric}", scores[best])
    print(f"{metric}: a {scores['a']:.4f}, b {scores['b']:.4f}; model {best} is better")


if __name__ == "__main__":
    steplib.run(main)
