"""train-sklearn: fit one estimator on a table and save it with its settings."""

import time

import steplib

from runner import context


def main() -> None:
    params = steplib.params()
    table = steplib.read_table("data")
    table.require_rows(2)
    target_column = params["target_column"]
    features = steplib.feature_columns(table, target_column, params["feature_columns"])
    task = steplib.infer_task(params["task"], table.column(target_column))
    target = steplib.check_target(table, target_column, task)
    X = table.matrix(features)
    name, hyperparameters = params["estimator"], params["hyperparameters"]
    model = steplib.make_estimator(name, task, hyperparameters)
    started = time.monotonic()
    try:
        model.fit(X, target)
    except (ValueError, TypeError) as exc:
        raise steplib.StepFailure(f"cannot train {name}: {exc}") from exc
    seconds = time.monotonic() - started
    score = float(model.score(X, target))  # accuracy or R² on the training rows
    context.log_metrics({"train_score": score, "fit_seconds": seconds})
    steplib.save_model(context.output_path("model"), model, {
        "estimator": name, "task": task, "hyperparameters": hyperparameters,
        "target_column": target_column, "feature_columns": features,
        "classes": sorted(set(target.tolist())) if task == "classification" else None,
        "train_rows": table.rows, "train_score": score,
    })
    print(f"trained {name} ({task}) on {table.rows} rows, {len(features)} features: "
          f"training score {score:.4f}")


if __name__ == "__main__":
    steplib.run(main)
