"""parallel-run scores a table in mini-batches over processes, in input order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sklearn.linear_model import LinearRegression

if TYPE_CHECKING:
    from conftest import Step


def linear_model(step: Step):  # y = 2a + b, exactly
    rows = [["a", "b", "target"], *([a, b, 2 * a + b] for a in range(5) for b in range(5))]
    return step.publish_fitted(LinearRegression(), "linear_regression", rows, "regression")


def scoring_rows(count: int, bad_line: int | None = None) -> list[list]:
    rows = [["id", "a", "b"], *([f"r{i}", i, 1] for i in range(count))]
    if bad_line is not None:
        rows[bad_line - 1][1] = "oops"  # line 1 is the header
    return rows


@pytest.mark.slow
def test_it_scores_every_row_in_input_order_across_processes(step: Step) -> None:
    inputs = {"model": linear_model(step), "data": step.publish_table(scoring_rows(95))}
    params = {"batch_size": 10, "workers": 2, "keep_columns": ["id"]}
    result, sink = step.ok("parallel-run@1", params, inputs)
    predictions = step.read_table(result.outputs["predictions"])
    assert [row["id"] for row in predictions] == [f"r{i}" for i in range(95)]
    assert [row["row"] for row in predictions] == [str(i) for i in range(95)]
    assert [round(float(row["prediction"]), 6) for row in predictions] == [
        2 * i + 1 for i in range(95)]
    assert sink.metric_values("rows_done")[-1] == 95
    assert sink.metric_values("batches") == [10] and sink.metric_values("failed_batches") == [0]


@pytest.mark.slow
def test_a_failing_batch_is_retried_then_allowed_by_the_threshold(step: Step) -> None:
    inputs = {"model": linear_model(step), "data": step.publish_table(scoring_rows(30, 15))}
    params = {"batch_size": 10, "workers": 2, "retries": 1, "max_failed_batches": 1}
    result, sink = step.ok("parallel-run@1", params, inputs)
    predictions = step.read_table(result.outputs["predictions"])
    assert len(predictions) == 30
    assert [row["prediction"] for row in predictions[10:20]] == [""] * 10  # the failed batch
    assert predictions[9]["prediction"] and predictions[20]["prediction"]
    attempts = [t for t in sink.texts("stdout") if t.startswith("batch 2 (lines 12-21)")]
    assert len(attempts) == 2 and "could not convert string to float: 'oops'" in attempts[0]
    assert sink.metric_values("failed_batches") == [1]


@pytest.mark.slow
def test_too_many_failed_batches_fail_the_step(step: Step) -> None:
    inputs = {"model": linear_model(step), "data": step.publish_table(scoring_rows(30, 15))}
    params = {"batch_size": 10, "retries": 0, "max_failed_batches": 0}
    message = step.failed("parallel-run@1", params, inputs)
    assert message == ("1 batches failed, more than the 0 allowed; first batch 2 (lines 12-21): "
                       "ValueError: could not convert string to float: 'oops'")


def test_a_missing_feature_column_and_an_empty_table_fail(step: Step) -> None:
    model = linear_model(step)
    message = step.failed("parallel-run@1", {}, {
        "model": model, "data": step.publish_table([["id", "a"], ["r1", 1]])})
    assert message == "column 'b' not found in input 'data'; columns: id, a"
    message = step.failed("parallel-run@1", {}, {
        "model": model, "data": step.publish_table([["a", "b"]])})
    assert message == "input 'data' has no rows to score"
