"""sample-data writes a bundled scikit-learn data set as a table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Step


def test_it_writes_the_diabetes_table_with_a_target_column(step: Step) -> None:
    result, sink = step.ok("sample-data@1", {"dataset": "diabetes"})
    rows = step.read_table(result.outputs["data"])
    assert len(rows) == 442
    assert list(rows[0])[-1] == "target" and "bmi" in rows[0]
    assert float(rows[0]["target"]) == 151.0
    assert sink.metric_values("rows") == [442]


@pytest.mark.slow
def test_it_samples_rows_reproducibly(step: Step) -> None:
    params = {"dataset": "breast_cancer", "max_rows": 40, "seed": 3}
    first, _ = step.ok("sample-data@1", params)
    second, _ = step.ok("sample-data@1", params)
    assert first.outputs["data"]["digest"] == second.outputs["data"]["digest"]
    rows = step.read_table(first.outputs["data"])
    assert len(rows) == 40 and {row["target"] for row in rows} == {"0", "1"}


def test_an_unknown_data_set_fails_with_the_known_ones(step: Step) -> None:
    message = step.failed("sample-data@1", {"dataset": "mnist"})
    assert message == "unknown data set 'mnist'; known: diabetes, breast_cancer, iris, wine"
