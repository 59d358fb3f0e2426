"""A run's progress line, its metrics as a table, and safe unpacking of downloads."""

import io
import sys
import zipfile

import httpx
import pytest

from runner.sdk import ApiError, Client, Metrics, Run
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


def test_following_a_run_rides_out_a_server_restart():
    """503s and refused connections while the server restarts; then the run's end."""
    replies = iter([503, "refused", 200])

    def server(request: httpx.Request) -> httpx.Response:
        reply = next(replies)
        if reply == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        if reply == 503:
            return httpx.Response(503, json={"detail": "The database is unavailable."})
        return httpx.Response(200, json={"id": 7, "status": "succeeded", "steps": []})

    client = Client("http://server", "token", transport=httpx.MockTransport(server))
    out = io.StringIO()
    run = Run(client, {"id": 7, "status": "running", "steps": []}).wait(out=out, poll_s=0)
    assert run.status == "succeeded"
    assert out.getvalue() == "run 7 succeeded: 0/0 steps done ()\n"


def test_a_refusal_that_is_not_transient_ends_the_wait():
    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not found.", "errors": []})

    client = Client("http://server", "token", transport=httpx.MockTransport(server))
    with pytest.raises(ApiError) as refused:
        Run(client, {"id": 7, "status": "running"}).wait(show_output=False, poll_s=0)
    assert (refused.value.status, refused.value.detail) == (404, "Not found.")
