"""The step-side API: parameters, ports and metrics from the executor's environment."""

from __future__ import annotations

import ast
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import context


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("PIPELINES_"):
            monkeypatch.delenv(key)


@pytest.fixture
def params_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"alpha": 0.5, "layers": [1, 2], "name": "x"}))
    monkeypatch.setenv("PIPELINES_PARAMS", str(path))
    return path


class MetricsPipe:
    """The executor's end of a metrics pipe, drained by a thread so writers never block."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read_fd, self.write_fd = os.pipe()
        monkeypatch.setenv("PIPELINES_METRICS_FD", str(self.write_fd))
        monkeypatch.setenv("PIPELINES_METRICS_INODE", str(os.fstat(self.write_fd).st_ino))
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._drain)
        self.thread.start()

    def _drain(self) -> None:
        while chunk := os.read(self.read_fd, 65536):
            self.chunks.append(chunk)

    def close(self) -> list[dict]:
        context.flush_metrics()
        os.close(self.write_fd)
        self.thread.join(5)
        os.close(self.read_fd)
        return [json.loads(line) for line in b"".join(self.chunks).decode().splitlines()]


@pytest.fixture
def metrics_pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[MetricsPipe]:
    pipe = MetricsPipe(monkeypatch)
    yield pipe
    if pipe.thread.is_alive():
        pipe.close()


# --- Parameters ---------------------------------------------------------------------------


def test_params_come_from_the_json_file(params_file: Path) -> None:
    assert context.params() == {"alpha": 0.5, "layers": [1, 2], "name": "x"}
    assert context.param("alpha") == 0.5
    assert context.param("missing", default=3) == 3
    assert context.param("missing", None) is None


def test_params_are_read_once_and_cannot_be_changed_by_callers(params_file: Path) -> None:
    context.params()["layers"].append(3)
    params_file.write_text(json.dumps({"alpha": 9}))
    assert context.params()["layers"] == [1, 2]


def test_a_missing_parameter_names_the_known_ones(params_file: Path) -> None:
    with pytest.raises(KeyError) as caught:
        context.param("beta")
    assert str(caught.value) == "no parameter 'beta' (parameters: alpha, layers, name)"


def test_a_script_run_by_hand_has_no_parameters() -> None:
    assert context.params() == {}
    assert context.param("alpha", 1.0) == 1.0


# --- Ports --------------------------------------------------------------------------------


def test_port_variables_are_upper_cased_and_safe() -> None:
    assert context.port_variable("PIPELINES_INPUT_", "train_data") == "PIPELINES_INPUT_TRAIN_DATA"
    assert context.port_variable("PIPELINES_OUTPUT_", "my-model.v2") == (
        "PIPELINES_OUTPUT_MY_MODEL_V2")


def test_input_path_reads_the_port_variable(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("PIPELINES_INPUT_DATA", str(tmp_path / "data"))
    assert context.input_path("data") == tmp_path / "data"


def test_a_missing_input_lists_the_available_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINES_INPUT_TRAIN", "/x")
    monkeypatch.setenv("PIPELINES_INPUT_TEST", "/y")
    with pytest.raises(KeyError, match=r"no input 'valid' \(inputs: test, train\)"):
        context.input_path("valid")


def test_output_path_creates_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIPELINES_OUTPUT_MODEL", str(tmp_path / "outputs" / "model"))
    path = context.output_path("model")
    assert path.is_dir() and path == tmp_path / "outputs" / "model"
    with pytest.raises(KeyError, match=r"no output 'other' \(outputs: model\)"):
        context.output_path("other")


# --- Metrics ------------------------------------------------------------------------------


def test_metrics_are_json_lines_on_the_pipe(metrics_pipe: MetricsPipe) -> None:
    context.log_metric("loss", 0.25, step=1)
    context.log_metric("accuracy", 1)
    context.log_metrics({"a": 1.5, "b": -2.0}, step=7)
    points = metrics_pipe.close()
    assert [(p["key"], p["value"], p["step"]) for p in points] == [
        ("loss", 0.25, 1), ("accuracy", 1.0, None), ("a", 1.5, 7), ("b", -2.0, 7)]
    assert all(isinstance(p["time"], float) for p in points)


def test_metrics_from_many_threads_arrive_whole(metrics_pipe: MetricsPipe) -> None:
    def log_many(worker: int) -> None:
        for i in range(300):
            context.log_metric(f"worker-{worker}", float(i), step=i)

    threads = [threading.Thread(target=log_many, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    points = metrics_pipe.close()
    assert len(points) == 8 * 300
    for worker in range(8):
        steps = [p["step"] for p in points if p["key"] == f"worker-{worker}"]
        assert steps == list(range(300))


def test_a_point_is_written_by_the_timer_without_a_flush(metrics_pipe: MetricsPipe) -> None:
    context.log_metric("loss", 0.5, step=1)
    deadline = time.monotonic() + 5
    while not metrics_pipe.chunks and time.monotonic() < deadline:
        time.sleep(0.005)
    assert b"".join(metrics_pipe.chunks).count(b"\n") == 1


def test_writes_are_whole_lines_of_at_most_pipe_buf_bytes(
        metrics_pipe: MetricsPipe, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pipe writes that much atomically, so no other writer's line can come between.
    writes: list[bytes] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        if fd == metrics_pipe.write_fd:
            writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    for i in range(3000):
        context.log_metric("k" * (i % 200 + 1), float(i), step=i)
    context.flush_metrics()
    assert len(metrics_pipe.close()) == 3000
    assert writes and all(len(w) <= select.PIPE_BUF and w.endswith(b"\n") for w in writes)


def test_forked_processes_write_whole_lines_and_never_each_others_buffer(
        metrics_pipe: MetricsPipe) -> None:
    context.log_metric("parent", 1.0)  # still buffered when the children are forked
    children = []
    for child in range(4):
        pid = os.fork()
        if pid == 0:  # never returns into pytest, whatever happens
            code = 1
            try:
                for i in range(2500):
                    context.log_metric(f"child-{child}", float(i), step=i)
                context.flush_metrics()
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    points = metrics_pipe.close()  # every line parses: none was cut by another's
    assert [p["key"] for p in points].count("parent") == 1
    for child in range(4):
        assert [p["step"] for p in points if p["key"] == f"child-{child}"] == list(range(2500))


def run_as_a_step(script: str, pipe: MetricsPipe, tmp_path: Path) -> subprocess.CompletedProcess:
    """Runs `script` in an interpreter of its own that has runner.context alone and the pipe,
    as the executor starts a step."""
    package = tmp_path / "runner"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "context.py").write_text(Path(context.__file__).read_text())
    return subprocess.run([sys.executable, "-c", script], pass_fds=[pipe.write_fd],
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True,
                          check=False)


STEP_SCRIPT = """
import os, signal, sys
from runner import context
for i in range(2500):
    context.log_metric("loss", float(i), step=i)
{ending}
"""


@pytest.mark.parametrize(("ending", "exit_code"), [
    ("", 0),
    ("raise RuntimeError('after the points')", 1),
    ("sys.exit(3)", 3),
    ("context.flush_metrics(); os._exit(4)", 4),
])
def test_a_process_that_ends_writes_every_buffered_point(
        metrics_pipe: MetricsPipe, tmp_path: Path, ending: str, exit_code: int) -> None:
    child = run_as_a_step(STEP_SCRIPT.format(ending=ending), metrics_pipe, tmp_path)
    assert child.returncode == exit_code, child.stderr
    assert [p["step"] for p in metrics_pipe.close()] == list(range(2500))


def test_a_process_killed_after_a_flush_wrote_what_it_flushed_and_whole_lines(
        metrics_pipe: MetricsPipe, tmp_path: Path) -> None:
    ending = ("context.flush_metrics()\n"
              "for i in range(2500, 2800): context.log_metric('loss', float(i), step=i)\n"
              "os.kill(os.getpid(), signal.SIGKILL)")
    child = run_as_a_step(STEP_SCRIPT.format(ending=ending), metrics_pipe, tmp_path)
    assert child.returncode == -signal.SIGKILL
    steps = [p["step"] for p in metrics_pipe.close()]
    assert 2500 <= len(steps) <= 2800 and steps == list(range(len(steps)))


@pytest.mark.parametrize(("key", "value", "step"), [
    ("", 1.0, None),
    ("   ", 1.0, None),
    ("k" * 201, 1.0, None),
    ("loss", math.nan, None),
    ("loss", math.inf, None),
    ("loss", True, None),
    ("loss", "0.5", None),
    ("loss", 1.0, 1.5),
    ("loss", 1.0, True),
])
def test_bad_metrics_are_refused(metrics_pipe: MetricsPipe, key: str, value: object,
                                 step: object) -> None:
    with pytest.raises(ValueError):
        context.log_metric(key, value, step)  # type: ignore[arg-type]
    assert metrics_pipe.close() == []


def test_log_metrics_writes_nothing_when_one_value_is_bad(metrics_pipe: MetricsPipe) -> None:
    with pytest.raises(ValueError):
        context.log_metrics({"good": 1.0, "bad": math.nan})
    assert metrics_pipe.close() == []


def test_without_the_executor_metrics_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    context.log_metric("loss", 0.5, step=3)
    context.log_metric("lr", 1)
    assert capsys.readouterr().err == "metric loss=0.5 step=3\nmetric lr=1.0\n"


def test_a_descriptor_that_is_not_the_pipe_never_receives_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A child of the step inherits the variable, not the descriptor; the number may be a file.
    with open(tmp_path / "unrelated.txt", "w") as unrelated:
        monkeypatch.setenv("PIPELINES_METRICS_FD", str(unrelated.fileno()))
        context.log_metric("loss", 0.5)
    assert (tmp_path / "unrelated.txt").read_text() == ""
    assert "metric loss=0.5" in capsys.readouterr().err


# --- Identity and the import rule ---------------------------------------------------------


def test_identity_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (context.run_id(), context.node(), context.attempt()) == (None, None, None)
    monkeypatch.setenv("PIPELINES_RUN_ID", "run-1")
    monkeypatch.setenv("PIPELINES_NODE", "train")
    monkeypatch.setenv("PIPELINES_ATTEMPT", "2")
    assert (context.run_id(), context.node(), context.attempt()) == ("run-1", "train", 2)


def test_context_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(context.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - {"__future__"} <= sys.stdlib_module_names
