"""register-model: check the model, log its evaluation metrics, pass the model on.

The server registers the model when the step succeeds, with the metrics this step logged.
"""

import json
import math

import steplib

from runner import context


def evaluation_metrics() -> dict[str, float]:
    """The numbers of evaluate's metrics.json on the optional `metrics` input, else none."""
    try:
        path = context.input_path("metrics")
    except context.MissingPortError:
        return {}
    path = path / "metrics.json" if path.is_dir() else path
    if not path.is_file():
        raise steplib.StepFailure("input 'metrics' holds no metrics.json (from evaluate)")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise steplib.StepFailure(f"input 'metrics' is not JSON: {exc}") from None
    values = report.get("metrics") if isinstance(report, dict) else None
    if not isinstance(values, dict):
        raise steplib.StepFailure("input 'metrics' has no \"metrics\" object (from evaluate)")
    return {key: float(value) for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value)}


def main() -> None:
    params = steplib.params()
    settings = steplib.model_settings("model")
    metrics = evaluation_metrics()
    if metrics:
        context.log_metrics(metrics)
    steplib.pass_on(context.input_path("model"), "model")
    shown = ", ".join(f"{key} {value:.4g}" for key, value in sorted(metrics.items()))
    print(f"registering {settings.get('estimator', 'a model')} as the next version of model "
          f"{params['name']!r}" + (f" ({shown})" if shown else ""))


if __name__ == "__main__":
    steplib.run(main)
