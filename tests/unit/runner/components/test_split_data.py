"""split-data divides a table into train and test tables."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Step


def test_it_splits_by_the_test_fraction_keeping_every_row_once(step: Step) -> None:
    rows = [["id", "x", "target"], *([i, i * 0.5, i % 2] for i in range(20))]
    result, sink = step.ok("split-data@1", {"test_fraction": 0.25, "seed": 1},
                           {"data": step.publish_table(rows)})
    train, test = (step.read_table(result.outputs[p]) for p in ("train", "test"))
    assert (len(train), len(test)) == (15, 5)
    ids = [int(r["id"]) for r in train + test]
    assert sorted(ids) == list(range(20))
    assert [int(r["id"]) for r in test] == sorted(int(r["id"]) for r in test)  # source order
    assert sink.metric_values("test_rows") == [5]


def test_a_stratified_split_keeps_class_shares(step: Step) -> None:
    result, _ = step.ok("split-data@1", {"test_fraction": 0.2, "stratify_column": "target"},
                        {"data": step.publish_dataset("iris")})
    test = step.read_table(result.outputs["test"])
    assert Counter(r["target"] for r in test) == {"0": 10, "1": 10, "2": 10}


def test_a_missing_stratify_column_names_the_columns(step: Step) -> None:
    data = step.publish_table([["a", "b", "c"], [1, 2, 3], [4, 5, 6]])
    message = step.failed("split-data@1", {"stratify_column": "target"}, {"data": data})
    assert message == "column 'target' not found in input 'data'; columns: a, b, c"


def test_an_empty_table_fails(step: Step) -> None:
    data = step.publish_table([["a", "target"]])
    message = step.failed("split-data@1", {}, {"data": data})
    assert message == "input 'data' has 0 rows; at least 2 needed"


def test_a_folder_without_a_csv_file_fails(step: Step) -> None:
    data = step.publish_text({"notes.txt": "no table here"})
    message = step.failed("split-data@1", {}, {"data": data})
    assert message.startswith("input 'data' holds no .csv file")
