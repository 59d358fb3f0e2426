"""dataset: pass on the dataset version that the server resolved as the `data` output."""

import steplib

from runner import context

DATASET_INPUT = "dataset"  # as runner.components.dataset.DATASET_INPUT


def main() -> None:
    params = steplib.params()
    try:
        source = context.input_path(DATASET_INPUT)
    except context.MissingPortError:
        raise steplib.StepFailure(
            f"no files for dataset {params['name']!r}: the server resolves the dataset when "
            "the step starts in a pipeline run") from None
    steplib.pass_on(source, "data")
    version = params["version"] or "latest"
    print(f"dataset {params['name']} ({version}): {source.name}")


if __name__ == "__main__":
    steplib.run(main)
