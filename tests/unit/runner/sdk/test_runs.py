"""A run's progress line, its metrics as a table, and safe unpacking of downloads."""

import io
import sys
import zipfile

import pytest

from runner.sdk import Metrics, Run
from runner.sdk.runs import _extract

ROWS = [{"node": "b", "attempt": 1, "key": "loss", "step": i, "value": 1.0 / (i + 1),
         "time": "2026-01-01T00:00:00Z"} for i in range(3)]


def test_progress_counts_ended_steps_of_all():
    run = Run(None, {"id": 7, "status": "running", "steps": [
        {"node": "a", "state": "reused"}, {"node": "b", "state": "running"},
        {"node": "c", "state": "pending"}]})
    assert run.progress() == "run 7 running: 1/3 steps done (a reused, b running, c pending)"
    assert not run.is_finished


def test_metrics_are_rows_and_columns():
    metrics = Metrics(ROWS)
    assert metrics.values("loss") == [1.0, 0.5, 1.0 / 3] and metrics.values("acc") == []
    assert metrics.columns["step"] == [0, 1, 2] and set(metrics.columns) == set(ROWS[0])


def test_to_pandas_needs_pandas_only_when_called(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as where pandas is not installed
    with pytest.raises(ImportError):
        Metrics(ROWS).to_pandas()


def test_a_download_with_a_path_outside_its_folder_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape.txt", "x")
    with pytest.raises(ValueError, match="outside its folder"):
        _extract(zipfile.ZipFile(buffer), tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()
