"""deploy-model: load the model and score one row, so that only a working model is deployed.

The server marks the registered version deployed when the step succeeds.
"""

import steplib


def main() -> None:
    import numpy as np

    params = steplib.params()
    steplib.model_settings("model")  # "not a model" as a sentence, before unpickling
    try:
        model, settings = steplib.load_model("model")
    except Exception as exc:  # a pickle fails in any way: a bad file, another scikit-learn
        raise steplib.StepFailure(f"the model cannot be loaded: {exc!r}") from None
    features = settings.get("feature_columns")
    if not isinstance(features, list) or not features:
        raise steplib.StepFailure("the model's settings.json names no feature_columns; the "
                                  "scoring endpoint needs them to read rows")
    try:
        [prediction] = model.predict(np.zeros((1, len(features)))).tolist()
    except Exception as exc:  # any failure to score: the model must not be deployed
        raise steplib.StepFailure(f"the model cannot score a row: {exc}") from None
    print(f"model {params['name']!r} scores rows of {len(features)} features "
          f"({', '.join(features)}); a row of zeros gives {prediction!r}")


if __name__ == "__main__":
    steplib.run(main)
