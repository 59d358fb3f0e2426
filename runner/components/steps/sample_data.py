"""sample-data: write a scikit-learn bundled data set as a CSV table."""

import numpy as np
import steplib

from runner import context

DATASETS = ("diabetes", "breast_cancer", "iris", "wine")  # sklearn.datasets.load_<name>


def main() -> None:
    params = steplib.params()
    name = params["dataset"]
    if name not in DATASETS:
        raise steplib.StepFailure(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    features, target = bunch.data, bunch.target
    if 0 < params["max_rows"] < len(target):
        rows = np.sort(np.random.default_rng(params["seed"]).choice(
            len(target), size=params["max_rows"], replace=False))
        features, target = features[rows], target[rows]
    columns = {str(n): features[:, i] for i, n in enumerate(bunch.feature_names)}
    columns["target"] = target
    steplib.write_table(context.output_path("data") / "data.csv", columns)
    context.log_metrics({"rows": len(target), "features": features.shape[1]})
    print(f"{name}: {len(target)} rows, {features.shape[1]} features and 'target'")


if __name__ == "__main__":
    steplib.run(main)
