"""split-data: split a table into train.csv and test.csv."""

import numpy as np
import steplib

from runner import context


def main() -> None:
    params = steplib.params()
    table = steplib.read_table("data")
    table.require_rows(2)
    stratify = table.column(params["stratify_column"]) if params["stratify_column"] else None
    if stratify is not None and not params["shuffle"]:
        raise steplib.StepFailure("a stratified split needs shuffle on")
    from sklearn.model_selection import train_test_split

    try:
        train_rows, test_rows = train_test_split(
            np.arange(table.rows), test_size=params["test_fraction"],
            random_state=params["seed"], shuffle=params["shuffle"], stratify=stratify)
    except ValueError as exc:
        raise steplib.StepFailure(f"cannot split {table.rows} rows: {exc}") from exc
    # Each part keeps the input's row order, so a split reads like its source.
    for port, rows in (("train", train_rows), ("test", test_rows)):
        part = table.take(np.sort(rows))
        steplib.write_table(context.output_path(port) / f"{port}.csv", part.columns)
    context.log_metrics({"train_rows": len(train_rows), "test_rows": len(test_rows)})
    print(f"{len(train_rows)} rows for training, {len(test_rows)} for testing")


if __name__ == "__main__":
    steplib.run(main)
