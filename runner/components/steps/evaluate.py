"""evaluate: score a model on a test table, log the metrics, save them and a plot."""

from pathlib import Path
from typing import Any

import numpy as np
import steplib

from runner import context


def classification_metrics(model: Any, X: Any, y_true: Any, y_pred: Any) -> dict[str, float]:
    from sklearn import metrics

    labels = np.unique(np.concatenate([y_true, y_pred]))
    binary = len(labels) <= 2
    values = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "f1": metrics.f1_score(y_true, y_pred, average="binary", pos_label=labels[-1])
        if binary else metrics.f1_score(y_true, y_pred, average="macro"),
    }
    auc = roc_auc(model, X, y_true)
    if auc is not None:
        values["roc_auc"] = auc
    return values


def roc_auc(model: Any, X: Any, y_true: Any) -> float | None:
    """ROC AUC from the model's probabilities or decision scores, None where it has neither."""
    from sklearn import metrics

    classes = list(getattr(model, "classes_", []))
    if len(set(y_true.tolist())) < 2 or not set(y_true.tolist()) <= set(classes):
        print("note: no ROC AUC (the test rows need two classes, all known to the model)")
        return None
    if hasattr(model, "predict_proba"):
        scores = model.predict_proba(X)
        scores = scores[:, 1] if len(classes) == 2 else scores
    elif hasattr(model, "decision_function") and len(classes) == 2:
        scores = model.decision_function(X)
    else:
        print("note: no ROC AUC (the model gives no scores)")
        return None
    if len(classes) == 2:
        return metrics.roc_auc_score(y_true == classes[1], scores)
    return metrics.roc_auc_score(y_true, scores, multi_class="ovr", labels=classes)


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    from sklearn import metrics

    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, y_pred))),
        "mae": metrics.mean_absolute_error(y_true, y_pred),
        "r2": metrics.r2_score(y_true, y_pred) if len(y_true) > 1 else float("nan"),
    }


def plot(task: str, y_true: Any, y_pred: Any, folder: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed in the step's environment; no plot")
        return
    from sklearn import metrics

    figure, axes = plt.subplots(figsize=(5, 4), dpi=100)
    if task == "classification":
        metrics.ConfusionMatrixDisplay.from_predictions(y_true, y_pred, ax=axes, colorbar=False,
                                                      cmap="Blues")
        axes.set_title("Confusion matrix")
        name = "confusion_matrix.png"
    else:
        axes.scatter(y_pred, y_true - y_pred, s=12, alpha=0.7)
        axes.axhline(0, color="grey", linewidth=1)
        axes.set(title="Residuals", xlabel="predicted", ylabel="true - predicted")
        name = "residuals.png"
    figure.tight_layout()
    figure.savefig(folder / name)
    plt.close(figure)


def main() -> None:
    params = steplib.params()
    settings = steplib.model_settings("model")
    table = steplib.read_table("data")
    table.require_rows(1)
    target_column = params["target_column"] or settings["target_column"]
    task = settings["task"]
    y_true = steplib.check_target(table, target_column, "regression") \
        if task == "regression" else table.column(target_column)
    X = table.matrix(settings["feature_columns"])
    model, _ = steplib.load_model("model")
    try:
        y_pred = model.predict(X)
    except ValueError as exc:
        raise steplib.StepFailure(f"the model cannot predict these rows: {exc}") from exc
    if task == "classification":
        values = classification_metrics(model, X, y_true, y_pred)
    else:
        values = regression_metrics(y_true.astype(float), y_pred)
    values = {key: float(value) for key, value in values.items() if np.isfinite(value)}
    prefix = params["metric_prefix"]
    context.log_metrics({prefix + key: value for key, value in values.items()})
    report = {"task": task, "rows": table.rows, "target_column": target_column,
              "estimator": settings.get("estimator"), "metrics": values}
    if task == "classification":
        labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        report["labels"] = labels
        from sklearn.metrics import confusion_matrix

        report["confusion_matrix"] = confusion_matrix(
            y_true, y_pred, labels=labels).tolist()
    steplib.write_json(context.output_path("metrics") / "metrics.json", report)
    plot(task, y_true, y_pred, context.output_path("plot"))
    print(", ".join(f"{key} {value:.4f}" for key, value in values.items()))


if __name__ == "__main__":
    steplib.run(main)
