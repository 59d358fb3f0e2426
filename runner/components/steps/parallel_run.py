"""parallel-run: score a table in mini-batches over worker processes, in input order.

The table streams from the input file to the output file, a few batches ahead of the writer,
so its size is bounded by the disk rather than by memory.
"""

import csv
import itertools
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import steplib

from runner import context

_model: Any = None  # the model, loaded once in each worker process


def load_model(path: str) -> None:
    global _model
    import joblib

    _model = joblib.load(path)


def score(first_line: int, rows: list[list[str]], width: int, columns: list[int]) -> list[Any]:
    """Predictions for one batch (runs in a worker process); a bad row fails the batch."""
    import numpy as np

    X = np.empty((len(rows), len(columns)))
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"line {first_line + i} has {len(row)} fields, not {width}")
        X[i] = [float(row[c]) if row[c].strip() else float("nan") for c in columns]
    return _model.predict(X).tolist()


class Batches:
    """Runs batches on a process pool with retries; yields their results in input order."""

    def __init__(self, pool: ProcessPoolExecutor, params: dict[str, Any], width: int,
                 features: list[int]) -> None:
        self.pool, self.width, self.features = pool, width, features
        self.size, self.retries = params["batch_size"], params["retries"]
        self.allowed, self.ahead = params["max_failed_batches"], 2 * params["workers"]
        self.pending: dict[Future, int] = {}
        self.rows: dict[int, list[list[str]]] = {}  # batches read and not yet yielded
        self.attempts: dict[int, int] = {}
        self.failed: list[str] = []

    def run(self, reader: Iterator[list[str]]) -> Iterator[tuple[list[list[str]], Any]]:
        """(rows, predictions) per batch in input order; predictions None where it failed."""
        batches = iter(lambda: list(itertools.islice(reader, self.size)), [])
        done: dict[int, Any] = {}
        number, next_out, read_all = 0, 0, False
        while True:
            while not read_all and len(self.pending) < self.ahead:
                rows = next(batches, None)
                if rows is None:
                    read_all = True
                else:
                    self.rows[number] = rows
                    self._submit(number)
                    number += 1
            if not self.pending:
                return
            finished, _ = wait(self.pending, return_when=FIRST_COMPLETED)
            for future in finished:
                self._collect(future, done)
            while next_out in done:
                yield self.rows.pop(next_out), done.pop(next_out)
                next_out += 1

    def _submit(self, number: int) -> None:
        self.attempts[number] = self.attempts.get(number, 0) + 1
        future = self.pool.submit(score, self._first_line(number), self.rows[number],
                                  self.width, self.features)
        self.pending[future] = number

    def _first_line(self, number: int) -> int:
        return 2 + number * self.size  # line 1 is the header

    def _collect(self, future: Future, done: dict[int, Any]) -> None:
        number = self.pending.pop(future)
        try:
            done[number] = future.result()
            return
        except BrokenProcessPool as exc:
            raise steplib.StepFailure(f"a worker process died: {exc}") from exc
        except Exception as exc:
            first = self._first_line(number)
            where = f"batch {number + 1} (lines {first}-{first + len(self.rows[number]) - 1})"
            error = f"{where}: {type(exc).__name__}: {exc}"
        print(f"{error} (attempt {self.attempts[number]} of {self.retries + 1})")
        if self.attempts[number] <= self.retries:
            self._submit(number)
            return
        self.failed.append(error)
        if len(self.failed) > self.allowed:
            raise steplib.StepFailure(f"{len(self.failed)} batches failed, more than the "
                                      f"{self.allowed} allowed; first {self.failed[0]}")
        done[number] = None


def column_indices(header: list[str], names: list[str]) -> list[int]:
    for name in names:
        if name not in header:
            raise steplib.StepFailure(f"column {name!r} not found in input 'data'; "
                                      f"columns: {', '.join(header)}")
    return [header.index(name) for name in names]


def main() -> None:
    params = steplib.params()
    settings = steplib.model_settings("model")
    model_file = str(context.input_path("model") / "model.joblib")
    output = context.output_path("predictions") / "predictions.csv"
    started, written, batches = time.monotonic(), 0, 0
    with steplib.table_file("data").open(newline="", encoding="utf-8") as source, \
            output.open("w", newline="", encoding="utf-8") as target:
        reader, writer = csv.reader(source), csv.writer(target)
        header = next(reader, None)
        if not header:
            raise steplib.StepFailure("input 'data' is empty: no header row")
        features = column_indices(header, settings["feature_columns"])
        kept = column_indices(header, params["keep_columns"])
        writer.writerow(["row", *params["keep_columns"], params["prediction_column"]])
        pool = ProcessPoolExecutor(params["workers"], initializer=load_model,
                                   initargs=(model_file,))
        try:
            runner = Batches(pool, params, len(header), features)
            for rows, predictions in runner.run(reader):
                for row, prediction in zip(rows, predictions or [None] * len(rows), strict=True):
                    writer.writerow([written, *(row[c] if c < len(row) else "" for c in kept),
                                     steplib.format_value(prediction)])
                    written += 1
                batches += 1
                context.log_metric("rows_done", written, step=batches)
        finally:
            pool.shutdown(cancel_futures=True)
    if written == 0:
        raise steplib.StepFailure("input 'data' has no rows to score")
    seconds = time.monotonic() - started
    context.log_metrics({"batches": batches, "failed_batches": len(runner.failed),
                         "rows_per_second": written / max(seconds, 1e-9)})
    print(f"scored {written} rows in {batches} batches over {params['workers']} processes in "
          f"{seconds:.2f} s; {len(runner.failed)} batches failed")


if __name__ == "__main__":
    steplib.run(main)
