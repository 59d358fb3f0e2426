"""The executor runs real step subprocesses: streams, results, timeouts, isolation, masking.

The tests about how a step is started and stopped run in each launch mode (each_launch_mode):
spawned, the baseline, and forked from a template interpreter, which must not differ from it.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from unittest.mock import patch

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner import step_launch, worker
from runner.datastore import Datastore
from runner.executor import StepResult, execute, launch, prepare, remove_workdir, streams, supervise
from runner.executor.launch import LAUNCH_MODES
from runner.executor.template import Template
from runner.isolation import Isolation
from runner.messages import MAX_LOG_LINE_CHARS, StepJob, parse_step_job
from tests.support import is_step_template


class RecordingSink:
    """Keeps what the executor streams, as the worker's reporter would send it."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.metrics: list[tuple[str, float, int | None]] = []

    def log(self, stream: str, text: str, time: float) -> None:
        self.lines.append((stream, text))

    def metric(self, key: str, value: float, step: int | None, time: float) -> None:
        self.metrics.append((key, value, step))

    def texts(self, stream: str) -> list[str]:
        return [text for name, text in self.lines if name == stream]

    def all_text(self) -> str:
        return "\n".join(text for _, text in self.lines)


def make_job(tmp_path: Path, script: str, **overrides: Any) -> StepJob:
    job = {
        "version": 1, "run_id": "run-1", "step_run_id": 1, "node": "train", "attempt": 1,
        "attempt_id": uuid.uuid4().hex, "token": "t" * 32,
        "server_url": "http://127.0.0.1:8000", "component": "python-script@1",
        "command": ["{python}", "{script}"],
        "code": {"inline": {"main.py": textwrap.dedent(script)}},
        "params": {}, "inputs": {}, "outputs": [], "env": {}, "secrets": {}, "python": None,
        "datastore_url": f"file://{tmp_path / 'store'}", "timeout_s": 30, "heartbeat_s": 5.0,
        "lost_contact_s": 20.0,
    }
    job.update(overrides)
    return parse_step_job(job)


each_launch_mode = pytest.mark.parametrize("launch_mode", LAUNCH_MODES)


def run(tmp_path: Path, job: StepJob, **kwargs: Any) -> tuple[StepResult, RecordingSink]:
    sink = RecordingSink()
    result = execute(job, sink, workdir_root=tmp_path / "work", **kwargs)
    return result, sink


def wait_gone(pid: int, within_s: float = 3.0) -> bool:
    """Whether the process is gone (or a zombie nobody reaped yet) within the time."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def artifacts_and_temp_files(tmp_path: Path) -> list[str]:
    store = tmp_path / "store"
    return [str(p.relative_to(store)) for p in store.rglob("*")
            if p.parent.name in ("artifacts", "tmp")] if store.exists() else []


GRANDCHILD = """
    import subprocess, sys, time
    child = subprocess.Popen(["sleep", "1000"])
    print("grandchild", child.pid, flush=True)
    time.sleep(1000)
"""


def grandchild_pid(sink: RecordingSink) -> int:
    line = next(text for text in sink.texts("stdout") if text.startswith("grandchild"))
    return int(line.split()[1])


# --- Streams -----------------------------------------------------------------------------


@each_launch_mode
def test_stdout_stderr_and_metrics_reach_the_sink_in_order(tmp_path: Path,
                                                          launch_mode: str) -> None:
    job = make_job(tmp_path, """
        import sys
        from runner import context
        for i in range(3):
            print(f"out {i}")
            print(f"err {i}", file=sys.stderr)
            context.log_metric("loss", 1.0 / (i + 1), step=i)
        context.log_metrics({"acc": 0.9, "f1": 0.8})
    """)
    result, sink = run(tmp_path, job, launch_mode=launch_mode)
    assert result.status == "succeeded", result
    assert (result.reason, result.message, result.exit_code) == (None, "succeeded", 0)
    assert sink.texts("stdout") == ["out 0", "out 1", "out 2"]
    assert sink.texts("stderr") == ["err 0", "err 1", "err 2"]
    assert sink.metrics == [("loss", 1.0, 0), ("loss", 0.5, 1), ("loss", 1 / 3, 2),
                            ("acc", 0.9, None), ("f1", 0.8, None)]


def lines_as_readline_cuts_them(data: bytes, limit: int) -> list[str]:
    """What reading with readline(limit) hands on: the beginning of each over-long line."""
    lines, skipping, source = [], False, io.BytesIO(data)
    for piece in iter(lambda: source.readline(limit), b""):
        if not skipping:
            text = piece.decode("utf-8", errors="replace")
            lines.append(text[:-1].removesuffix("\r") if text.endswith("\n") else text)
        skipping = not piece.endswith(b"\n")
    return lines


@settings(max_examples=500)
@given(data=st.lists(st.sampled_from([b"ab", b"\n", b"\r", "é".encode(), b"\xff"]),
                    max_size=40).map(b"".join),
       cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=10))
def test_lines_are_cut_as_readline_cuts_them_however_the_bytes_arrive(
        data: bytes, cuts: list[int]) -> None:
    limit = 4
    seen: list[str] = []
    lines = streams.Lines(seen.append)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    with patch.object(streams, "_READ_LIMIT", limit):
        for start, stop in zip(bounds, bounds[1:], strict=False):
            lines.feed(data[start:stop])
        lines.end()
    assert seen == lines_as_readline_cuts_them(data, limit)


def test_a_line_that_cannot_be_handed_on_does_not_stop_the_next_ones() -> None:
    seen: list[str] = []

    def handle(text: str) -> None:
        if text == "bad":
            raise RuntimeError("the sink broke on this one")
        seen.append(text)

    lines = streams.Lines(handle)
    lines.feed(b"one\nbad\ntwo\n")
    lines.end()
    assert seen == ["one", "two"]


def test_a_metric_line_nested_too_deep_is_reported_and_reading_goes_on(tmp_path: Path) -> None:
    job = make_job(tmp_path, """
        import os
        fd = int(os.environ["PIPELINES_METRICS_FD"])
        os.write(fd, b"[" * 100_000 + b"\\n")
        os.write(fd, b'{"key": "ok", "value": 2, "step": null, "time": 1.0}\\n')
        print("after")
    """)
    result, sink = run(tmp_path, job)
    assert result.status == "succeeded"
    assert sink.metrics == [("ok", 2.0, None)] and sink.texts("stdout") == ["after"]
    assert any("malformed metric line" in text for text in sink.texts("system"))


def test_a_fresh_start_is_awaited_without_a_pidfd_too(tmp_path: Path, monkeypatch) -> None:
    def refused(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", refused)
    result, sink = run(tmp_path, make_job(tmp_path, "print('ran')"), launch_mode="spawn")
    assert result.status == "succeeded" and sink.texts("stdout") == ["ran"]


def test_long_lines_are_cut_and_bad_metric_lines_reported(tmp_path: Path) -> None:
    job = make_job(tmp_path, """
        import os
        print("x" * 100_000)
        print("after")
        fd = int(os.environ["PIPELINES_METRICS_FD"])
        os.write(fd, b"not json\\n")
        os.write(fd, b'{"key": "ok", "value": 2, "step": null, "time": 1.0}\\n')
        os.write(fd, b'{"key": "nan", "value": NaN, "step": null, "time": 1.0}\\n')
    """)
    result, sink = run(tmp_path, job)
    assert result.status == "succeeded"
    long_line, after = sink.texts("stdout")
    assert len(long_line) == MAX_LOG_LINE_CHARS and long_line.endswith("[line cut]")
    assert after == "after"
    assert sink.metrics == [("ok", 2.0, None)]
    malformed = [t for t in sink.texts("system") if "malformed metric line" in t]
    assert len(malformed) == 2 and "not json" in malformed[0]


@each_launch_mode
def test_on_start_gets_the_pid_of_the_steps_supervisor_which_leads_its_group(
        tmp_path: Path, launch_mode: str) -> None:
    job = make_job(tmp_path, "import os; print(os.getppid(), os.getpgid(0), os.getsid(0))")
    pids: list[int] = []
    result, sink = run(tmp_path, job, on_start=pids.append, launch_mode=launch_mode)
    assert result.status == "succeeded", sink.all_text()
    assert [pids * 3] == [list(map(int, sink.texts("stdout")[0].split()))]


# --- The claim and the template steps are forked from ----------------------------------

MARKS_ITS_START = """
    import os, pathlib
    supervisor = os.getppid()
    with open(f"/proc/{supervisor}/stat") as stat:  # its parent is the fourth field
        template = stat.read().rsplit(")", 1)[1].split()[1]
    pathlib.Path(os.environ['MARK']).write_text(f"{os.getpid()} {supervisor} {template}")
    print('ran', flush=True)
"""


def forked_from(mark: Path) -> int:
    """The pid of the template whose child, the step's supervisor, forked the step that wrote
    the mark."""
    pid, supervisor, template = map(int, mark.read_text().split())
    assert len({pid, supervisor, template}) == 3
    return template


def templates() -> list[psutil.Process]:
    """Interpreters this process keeps to fork steps from."""
    return [child for child in psutil.Process().children() if is_step_template(child)]


class SlowClaim:
    """A claim that takes a while, as a round trip to a busy server does, and looks around."""

    def __init__(self, mark: Path, answer: bool) -> None:
        self.mark, self.answer = mark, answer
        self.calls = 0
        self.templates_during_claim: list[psutil.Process] = []

    def __call__(self) -> bool:
        self.calls += 1
        deadline = time.monotonic() + 10
        while not self.templates_during_claim and time.monotonic() < deadline:
            self.templates_during_claim = templates()
            time.sleep(0.02)
        time.sleep(0.5)  # long enough for a script started too early to have run
        assert not self.mark.exists(), "step code ran before the claim was answered"
        return self.answer


def stop_templates() -> None:
    for template in templates():
        template.kill()
        template.wait(10)


def test_a_template_starts_during_the_first_claim_and_the_step_forks_after_it(
        tmp_path: Path) -> None:
    stop_templates()
    mark = tmp_path / "mark"
    claim = SlowClaim(mark, answer=True)
    job = make_job(tmp_path, MARKS_ITS_START, env={"MARK": str(mark)})
    result, sink = run(tmp_path, job, claim=claim)
    assert result.status == "succeeded" and claim.calls == 1
    assert [p.pid for p in claim.templates_during_claim] == [forked_from(mark)]
    assert sink.texts("stdout") == ["ran"]


def test_every_step_forks_from_the_template_kept_and_none_is_left_unreaped(
        tmp_path: Path) -> None:
    run(tmp_path, make_job(tmp_path, "pass"))
    [template] = templates()
    for i in range(3):
        mark = tmp_path / f"mark{i}"
        result, _ = run(tmp_path, make_job(tmp_path, MARKS_ITS_START, env={"MARK": str(mark)}))
        assert result.status == "succeeded" and forked_from(mark) == template.pid
    assert templates() == [template] and reaped_all(template)


def reaped_all(template: psutil.Process) -> bool:
    """Whether the template has reaped its steps (it does so just after the executor's word)."""
    deadline = time.monotonic() + 5
    while template.children() and time.monotonic() < deadline:
        time.sleep(0.02)
    return template.children() == []


def test_a_refused_claim_forks_nothing_and_the_template_serves_the_next_step(
        tmp_path: Path) -> None:
    stop_templates()
    mark = tmp_path / "mark"
    claim = SlowClaim(mark, answer=False)
    job = make_job(tmp_path, MARKS_ITS_START, env={"MARK": str(mark)})
    result, sink = run(tmp_path, job, claim=claim)
    assert result is None and claim.calls == 1
    [template] = claim.templates_during_claim
    assert templates() == [template] and reaped_all(template) and not mark.exists()
    assert sink.texts("stdout") == []
    assert not (tmp_path / "work" / "run-1").exists()
    result, _ = run(tmp_path, job)
    assert result.status == "succeeded" and forked_from(mark) == template.pid


def test_a_template_that_died_is_replaced(tmp_path: Path) -> None:
    run(tmp_path, make_job(tmp_path, "pass"))
    stop_templates()
    result, sink = run(tmp_path, make_job(tmp_path, "print('ran')"))
    assert result.status == "succeeded" and sink.texts("stdout") == ["ran"]
    assert len(templates()) == 1


def test_a_template_that_died_during_a_refused_claim_is_not_kept(tmp_path: Path) -> None:
    def kill_and_refuse() -> bool:
        stop_templates()
        return False

    result, _ = run(tmp_path, make_job(tmp_path, "pass"), claim=kill_and_refuse)
    assert result is None and templates() == []
    result, sink = run(tmp_path, make_job(tmp_path, "print('ran')"))
    assert result.status == "succeeded" and sink.texts("stdout") == ["ran"]


def test_a_template_that_dies_during_the_claim_gives_way_to_a_fresh_start(
        tmp_path: Path) -> None:
    def kill_and_grant() -> bool:
        stop_templates()
        return True

    result, sink = run(tmp_path, make_job(tmp_path, "print('ran')"), claim=kill_and_grant)
    assert result.status == "succeeded" and sink.texts("stdout") == ["ran"]


def test_a_template_that_dies_during_its_step_fails_the_step_and_ends_it(
        tmp_path: Path) -> None:
    run(tmp_path, make_job(tmp_path, "pass"))
    [template] = templates()
    job = make_job(tmp_path, "import os, time; print(os.getpid(), flush=True); time.sleep(60)")
    pids: list[int] = []
    killer = threading.Timer(1.0, template.kill)
    killer.start()
    started = time.monotonic()
    result, sink = run(tmp_path, job, on_start=pids.append)
    killer.join()
    assert result.status == "failed" and result.reason == "error"
    assert "exit status is unknown" in result.message and time.monotonic() - started < 10
    [step_pid] = map(int, sink.texts("stdout"))
    assert wait_gone(pids[0]) and wait_gone(step_pid)
    result, _ = run(tmp_path, make_job(tmp_path, "pass"))
    assert result.status == "succeeded"


def test_a_template_whose_executable_was_replaced_is_not_used(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.symlink_to(sys.executable)
    run(tmp_path, make_job(tmp_path, "pass", python=str(python)))
    [stale] = templates()
    python.unlink()
    python.symlink_to("/usr/bin/python3")  # a virtualenv made again, say
    job = make_job(tmp_path, "import os, sys; print(os.getppid(), sys.base_prefix)",
                   python=str(python))
    result, sink = run(tmp_path, job)
    parent, prefix = sink.texts("stdout")[0].split()
    assert result.status == "succeeded" and int(parent) != stale.pid and prefix == "/usr"


def test_a_template_whose_virtualenv_changed_is_not_used(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    run(tmp_path, make_job(tmp_path, "pass", python=python))
    [stale] = templates()
    library = tmp_path / "library"
    library.mkdir()
    (library / "mymod.py").write_text("")
    site_packages = next((venv / "lib").glob("python*/site-packages"))
    (site_packages / "library.pth").write_text(f"{library}\n")  # as `pip install -e` adds
    job = make_job(tmp_path, "import os, mymod; print(os.getppid())", python=python)
    result, sink = run(tmp_path, job)
    assert result.status == "succeeded", sink.all_text()
    assert int(sink.texts("stdout")[0]) != stale.pid


FINDS_IN_ITS_MEMORY = """
    import os, re
    found = set()
    with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as memory:
        for line in maps:
            span, permissions = line.split()[:2]
            if 'r' not in permissions or '[vvar]' in line or '[vsyscall]' in line:
                continue
            start, end = (int(x, 16) for x in span.split('-'))
            try:
                memory.seek(start)
                found.update(re.findall(rb'secret-of-step-a-[0-9a-f]{8}',
                                        memory.read(end - start)))
            except OSError:
                pass
    print(sorted(found))
"""


def test_a_forked_step_finds_nothing_of_an_earlier_steps_secrets_in_its_memory(
        tmp_path: Path) -> None:
    # Of several sizes, since what stays in freed memory depends on the allocator.
    secrets = {f"KEY_{size}": f"secret-of-step-a-{uuid.uuid4().hex[:8]}" + "x" * size
               for size in (0, 50, 300, 5000)}
    result, _ = run(tmp_path, make_job(tmp_path, "pass", secrets=secrets))
    assert result.status == "succeeded"
    [template] = templates()
    result, sink = run(tmp_path, make_job(tmp_path, FINDS_IN_ITS_MEMORY))
    assert result.status == "succeeded", sink.all_text()
    assert sink.texts("stdout") == ["[]"] and templates() == [template]


def test_a_step_that_stops_its_supervisor_and_template_still_ends_on_its_timeout(
        tmp_path: Path) -> None:
    job = make_job(tmp_path, """
        import os, signal, time
        supervisor = os.getppid()
        with open(f"/proc/{supervisor}/stat") as stat:
            template = int(stat.read().rsplit(")", 1)[1].split()[1])
        for pid in (template, supervisor):
            os.kill(pid, signal.SIGSTOP)
        time.sleep(60)
    """, timeout_s=1)
    started = time.monotonic()
    result, _ = run(tmp_path, job)
    assert result.status == "failed" and time.monotonic() - started < 15
    result, sink = run(tmp_path, make_job(tmp_path, "print('ran')"))
    assert result.status == "succeeded" and sink.texts("stdout") == ["ran"]


def test_a_template_that_dies_before_telling_the_pid_runs_no_step_and_a_fresh_start_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stop_templates()
    source = Path(step_launch.__file__).read_text()
    dies = tmp_path / "step_launch.py"  # a template killed between its fork and its answer
    dies.write_text(source.replace("        send_int(sock, pid)\n", "        os._exit(1)\n", 1))
    assert dies.read_text() != source
    monkeypatch.setattr(step_launch, "__file__", str(dies))
    runs = tmp_path / "runs"
    job = make_job(tmp_path, """
        import os, time
        with open(os.environ['RUNS'], 'a') as runs:
            runs.write(f"{os.getpid()}\\n")
        time.sleep(0.5)
    """, env={"RUNS": str(runs)})
    result, sink = run(tmp_path, job)
    time.sleep(0.5)  # a forked child would have written by now
    assert result.status == "succeeded", sink.all_text()
    assert len(runs.read_text().split()) == 1


def test_a_template_that_cannot_start_gives_way_to_a_fresh_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stop_templates()

    def cannot_start(python: str) -> Any:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(Template, "start", cannot_start)
    result, sink = run(tmp_path, make_job(tmp_path, "print('ran')"))
    assert result.status == "succeeded" and sink.texts("stdout") == ["ran"]


def test_a_forked_step_has_sockets_and_metrics_pipes_as_a_fresh_one_does(
        tmp_path: Path) -> None:
    script = """
        import os, socket, subprocess, sys
        a, b = socket.socketpair()
        a.sendall(b"hi")
        print(b.recv(2).decode(), flush=True)
        from runner.context import log_metric
        log_metric("loss", 0.5, step=1)
        fd = int(os.environ["PIPELINES_METRICS_FD"])
        child = "from runner.context import log_metric; log_metric('loss', 0.25, step=2)"
        subprocess.run([sys.executable, "-c", child], pass_fds=[fd], check=True)
    """
    seen = []
    for launch_mode in LAUNCH_MODES:
        result, sink = run(tmp_path, make_job(tmp_path, script), launch_mode=launch_mode)
        assert result.status == "succeeded", sink.all_text()
        # The step's own point is buffered and may come after its child's.
        seen.append((sink.texts("stdout"), sorted(sink.metrics)))
    assert seen[0] == seen[1] == (["hi"], [("loss", 0.25, 2), ("loss", 0.5, 1)])


SEES = """
    import json, os, site, sys
    import helper
    work = os.path.dirname(os.getcwd())
    def probe(x: int) -> None: ...
    print(json.dumps({
        "argv": sys.argv, "orig_argv": sys.orig_argv[1:], "name": __name__,
        "file": __file__.replace(work, "WORK"),
        "path": [p.replace(work, "WORK") for p in sys.path], "cwd": os.getcwd() == work + "/code",
        "main": sorted(vars(sys.modules["__main__"])), "flags": list(sys.flags),
        "modules": sorted(sys.modules),
        "user_site": site.getusersitepackages().replace(work, "WORK"),
        "annotations": repr(probe.__annotations__), "helper": helper.__file__.replace(work, "W"),
        "env": sorted((k, v.replace(work, "WORK")) for k, v in os.environ.items()
                      if k not in ("PIPELINES_METRICS_FD", "PIPELINES_METRICS_INODE")),
    }))
"""


def test_a_forked_step_sees_what_a_fresh_interpreter_would(tmp_path: Path) -> None:
    code = {"inline": {"main.py": textwrap.dedent(SEES), "helper.py": ""}}
    job = make_job(tmp_path, "", code=code, params={"arguments": ["--n", "3"]})
    assert prepare.forkable(job)
    seen = []
    for launch_mode in LAUNCH_MODES:
        result, sink = run(tmp_path, job, launch_mode=launch_mode)
        assert result.status == "succeeded", sink.all_text()
        seen.append(json.loads(sink.texts("stdout")[0]))
    assert seen[0] == seen[1]
    assert seen[0]["argv"] == ["main.py", "--n", "3"] and seen[0]["path"][:2] == [
        "WORK/code", "WORK/.pipelines/lib"]


def test_a_module_of_the_steps_own_wins_over_the_stdlib_one_of_that_name(tmp_path: Path) -> None:
    code = {"inline": {"main.py": "import json; print(json.__file__)", "json.py": ""}}
    result, sink = run(tmp_path, make_job(tmp_path, "", code=code))
    assert result.status == "succeeded" and sink.texts("stdout")[0].endswith("/code/json.py")


SHUTS_DOWN = """
    import atexit, threading, time
    atexit.register(lambda: print('atexit ran', flush=True))
    threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True))).start()
"""


@pytest.mark.parametrize("end", ["raise KeyboardInterrupt", "import sys; sys.exit(4)",
                                 "raise SystemExit('bad input')", "1/0", "import os; os._exit(7)",
                                 "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
def test_a_forked_step_ends_as_a_fresh_one_would(tmp_path: Path, end: str) -> None:
    script = textwrap.dedent(SHUTS_DOWN) + end
    compile(script, "main.py", "exec")  # what ends it is the line under test
    ends = []
    for launch_mode in LAUNCH_MODES:
        result, sink = run(tmp_path, make_job(tmp_path, script), launch_mode=launch_mode)
        ends.append((result.status, result.reason, result.exit_code, result.message,
                     sink.texts("stdout")))
    assert ends[0] == ends[1]


COLLECTS = """
    import gc, weakref
    class Loud:
        def __init__(self, name): self.name = name
        def __del__(self): print(self.name, "finalized", flush=True)
    cycle = Loud("cycle")
    cycle.me = cycle
    gone = weakref.ref(cycle)
    del cycle
    print("enabled", gc.isenabled(), "collected", gc.collect() > 0, gone() is None, flush=True)
    kept = Loud("global")  # finalized when the interpreter ends, as after any script
"""


def test_a_forked_step_collects_and_finalizes_its_objects_as_a_fresh_one_does(
        tmp_path: Path) -> None:
    seen = []
    for launch_mode in LAUNCH_MODES:
        result, sink = run(tmp_path, make_job(tmp_path, COLLECTS), launch_mode=launch_mode)
        assert result.status == "succeeded", sink.all_text()
        seen.append(sink.texts("stdout"))
    assert seen[0] == seen[1] == ["cycle finalized", "enabled True collected True True",
                                  "global finalized"]


def test_the_traceback_of_a_forked_step_is_its_own(tmp_path: Path) -> None:
    job = make_job(tmp_path, """
        def fail():
            raise ValueError("bad row 7")
        fail()
    """)
    result, sink = run(tmp_path, job)
    assert result.exit_code == 1 and result.message == "exit code 1: ValueError: bad row 7"
    frames = [line for line in result.traceback.splitlines() if line.startswith("  File")]
    assert len(frames) == 2 and all("main.py" in frame for frame in frames)


@pytest.mark.parametrize(("command", "env"), [
    (["sh", "-c", "{python} {script}"], {}),
    (["{python}", "-I", "{script}"], {}),
    (["{python}", "-Es", "{script}"], {}),
    (["{python}", "{script}"], {"PYTHONHASHSEED": "7"}),
    (["{python}", "{script}"], {"LD_LIBRARY_PATH": "/opt/cuda/lib64"}),
    (["{python}", "{script}"], {"LC_ALL": "C.UTF-8"}),
])
def test_a_step_that_needs_its_own_start_starts_after_the_claim(
        tmp_path: Path, command: list[str], env: dict[str, str]) -> None:
    mark = tmp_path / "mark"
    claim = SlowClaim(mark, answer=True)
    claim.waiting_during_claim = [psutil.Process()]  # not looking: nothing should start
    job = make_job(tmp_path, MARKS_ITS_START, env={"MARK": str(mark), **env}, command=command)
    spawn = launch.spawn
    started_during_claim = []

    def start(*args: Any) -> Any:
        started_during_claim.append(claim.calls == 0)
        return spawn(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(launch, "spawn", start)
        result, sink = run(tmp_path, job, claim=claim)
    assert result.status == "succeeded", sink.all_text()
    assert started_during_claim == [False] and mark.exists()


def test_a_step_that_could_not_be_prepared_is_claimed_to_report_it(tmp_path: Path) -> None:
    job = make_job(tmp_path, "", params={"arguments": "--n 3"})
    answers: list[bool] = []
    result, _ = run(tmp_path, job, claim=lambda: answers.append(True) or True)
    assert result.reason == "error" and answers == [True]
    result, sink = run(tmp_path, job, claim=lambda: False)
    assert result is None and sink.lines == []


def test_the_sitecustomize_of_the_steps_own_pythonpath_runs(tmp_path: Path) -> None:
    own = tmp_path / "own-site"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITE'] = 'loaded'\n")
    job = make_job(tmp_path, "import os; print(os.environ.get('OWN_SITE'))",
                   env={"PYTHONPATH": str(own)})
    result, sink = run(tmp_path, job, claim=lambda: True)
    assert result.status == "succeeded" and sink.texts("stdout") == ["loaded"]


# --- The launch mode ----------------------------------------------------------------------


def started_by(mark: Path) -> int:
    """The parent of the supervisor of the step that wrote the mark (MARKS_ITS_START)."""
    _, _, parent = map(int, mark.read_text().split())
    return parent


def test_in_spawn_mode_every_step_starts_as_its_own_command_and_no_template_is_kept(
        tmp_path: Path) -> None:
    stop_templates()
    for i in range(2):
        mark = tmp_path / f"mark{i}"
        job = make_job(tmp_path, MARKS_ITS_START, env={"MARK": str(mark)})
        result, sink = run(tmp_path, job, launch_mode="spawn")
        assert result.status == "succeeded", sink.all_text()
        assert prepare.forkable(job) and started_by(mark) == os.getpid()
        assert templates() == []


def test_an_unknown_launch_mode_fails_the_step_and_runs_nothing(tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    job = make_job(tmp_path, MARKS_ITS_START, env={"MARK": str(mark)})
    result, _ = run(tmp_path, job, launch_mode="vfork")
    assert (result.status, result.reason) == ("failed", "error")
    assert "vfork" in result.message and not mark.exists()


@pytest.mark.parametrize(("value", "mode"), [(None, "fork"), ("", "fork"), ("fork", "fork"),
                                             ("spawn", "spawn")])
def test_the_worker_takes_its_launch_mode_from_pipelines_step_launch(
        value: str | None, mode: str) -> None:
    assert worker.step_launch_mode(value) == mode


def test_a_worker_with_an_unknown_launch_mode_stops_as_it_starts() -> None:
    env = {**os.environ, "PIPELINES_STEP_LAUNCH": "vfork"}
    ended = subprocess.run([sys.executable, "-m", "runner", "worker", "--target", "t"],
                           cwd=Path(__file__).resolve().parents[3], env=env,
                           capture_output=True, text=True, timeout=60)
    assert ended.returncode != 0
    assert ended.stderr.splitlines()[-1] == (
        "ValueError: PIPELINES_STEP_LAUNCH='vfork': it must be one of fork, spawn "
        "(the default is fork)")


class Reporter(RecordingSink):
    """What the worker reports through, less the server: the claim is granted."""

    def claim(self) -> bool:
        return True

    def should_stop(self) -> str | None:
        return None

    def contact_until(self) -> float:
        return math.inf

    handed_over = None  # the server hands no next step over

    def finish(self, failure: dict[str, Any] | None, outputs: dict[str, Any],
               hand_over: bool = False) -> None:
        self.failure = failure


@pytest.mark.parametrize("launch_mode", LAUNCH_MODES)
def test_the_worker_runs_its_steps_in_its_launch_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launch_mode: str) -> None:
    stop_templates()
    monkeypatch.setenv("PIPELINES_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setattr(worker, "STEP_LAUNCH", launch_mode)
    # The step marks a file of the test's: outside its folder, so not confined (S11).
    monkeypatch.setattr(worker, "step_isolation", lambda: Isolation("none"))
    mark = tmp_path / "mark"
    reporter = Reporter()
    job = make_job(tmp_path, MARKS_ITS_START, env={"MARK": str(mark)})
    assert worker.run_job(job, reporter) == "succeeded" and reporter.failure is None
    if launch_mode == "fork":
        assert [template.pid for template in templates()] == [started_by(mark)]
    else:
        assert templates() == [] and started_by(mark) == os.getpid()


# --- Parameters, inputs, outputs ----------------------------------------------------------


def publish_input(tmp_path: Path, text: str) -> dict:
    source = tmp_path / f"input-{uuid.uuid4().hex}"
    source.mkdir()
    (source / "rows.txt").write_text(text)
    return Datastore(f"file://{tmp_path / 'store'}").publish(source)


@each_launch_mode
def test_params_inputs_and_outputs_work_through_context_and_variables(tmp_path: Path,
                                                                      launch_mode: str) -> None:
    data = publish_input(tmp_path, "1\n2\n3\n")
    job = make_job(tmp_path, """
        import json, os
        from pathlib import Path
        from runner import context
        assert context.params() == json.loads(Path(os.environ["PIPELINES_PARAMS"]).read_text())
        assert str(context.input_path("data")) == os.environ["PIPELINES_INPUT_DATA"]
        assert os.path.islink(context.input_path("data"))  # linked, not copied
        assert str(context.output_path("model")) == os.environ["PIPELINES_OUTPUT_MODEL"]
        rows = (context.input_path("data") / "rows.txt").read_text().split()
        total = sum(map(int, rows)) * context.param("alpha")
        (context.output_path("model") / "total.txt").write_text(str(total))
        print(context.run_id(), context.node(), context.attempt())
    """, params={"alpha": 2}, inputs={"data": data}, outputs=["model", "unused"], attempt=2)
    result, sink = run(tmp_path, job, launch_mode=launch_mode)
    assert result.status == "succeeded", (result, sink.lines)
    assert sink.texts("stdout") == ["run-1 train 2"]
    assert set(result.outputs) == {"model", "unused"}
    fetched = tmp_path / "fetched"
    Datastore.containing(result.outputs["model"]).materialize(result.outputs["model"], fetched)
    assert (fetched / "total.txt").read_text() == "12"
    assert result.outputs["unused"]["size"] == 0
    assert Datastore.containing(data).exists(data["digest"])  # cleaning up unlinked, not deleted


def test_cleaning_up_never_follows_links_out_of_the_working_directory(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    job = make_job(tmp_path, f"""
        import os
        os.symlink({str(precious)!r}, "link-out")
        os.makedirs("locked/inner")
        os.chmod("locked", 0o500)
    """)
    result, _ = run(tmp_path, job)
    assert result.status == "succeeded"
    assert (precious / "keep.txt").read_text() == "keep"
    assert not (tmp_path / "work" / "run-1").exists()


def test_outputs_have_the_same_digest_across_runs(tmp_path: Path) -> None:
    code = """
        from runner import context
        (context.output_path("out") / "a.txt").write_text("same every time")
    """
    first, _ = run(tmp_path, make_job(tmp_path, code, outputs=["out"]))
    second, _ = run(tmp_path, make_job(tmp_path, code, outputs=["out"], attempt=2))
    assert first.outputs["out"] == second.outputs["out"]
    assert not (tmp_path / "work" / "run-1").exists()  # working directories are removed


def test_the_working_directory_can_be_kept(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINES_KEEP_WORKDIR", "1")
    result, sink = run(tmp_path, make_job(tmp_path, "import os; print(os.getcwd())"))
    workdir = Path(sink.texts("stdout")[0]).parent
    assert workdir.parent == tmp_path / "work" / "run-1"
    assert workdir.name.startswith("train-a1-")
    assert (workdir / "params.json").exists() and (workdir / "code" / "main.py").exists()


def test_the_working_directory_can_be_left_to_the_caller_to_remove(tmp_path: Path) -> None:
    left: list[Path] = []
    result, _ = run(tmp_path, make_job(tmp_path, "print('hi')"), dispose=left.append)
    (workdir,) = left
    assert result.status == "succeeded" and (workdir / "code" / "main.py").exists()
    remove_workdir(workdir)
    assert not (tmp_path / "work" / "run-1").exists()


def test_a_run_folder_removed_by_another_step_meanwhile_is_made_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_folder = tmp_path / "work" / "run-1"
    run_folder.mkdir(parents=True)
    is_dir, raced = Path.is_dir, []

    def removed_meanwhile(path: Path) -> bool:
        # Path.mkdir(exist_ok=True) found the folder there, then looks again: by now the
        # last step of the run on this worker has removed it (remove_workdir).
        if path == run_folder and not raced:
            raced.append(path)
            run_folder.rmdir()
        return is_dir(path)

    monkeypatch.setattr(Path, "is_dir", removed_meanwhile)
    result, sink = run(tmp_path, make_job(tmp_path, "print('hi')"))
    assert raced and result.status == "succeeded" and sink.texts("stdout") == ["hi"]


def test_script_and_arguments_come_from_params(tmp_path: Path) -> None:
    job = make_job(tmp_path, "", params={"script": "tools/run.py", "arguments": ["--n", "3"]},
                   code={"inline": {"tools/run.py": "import sys; print(sys.argv[1:])"}})
    result, sink = run(tmp_path, job)
    assert result.status == "succeeded"
    assert sink.texts("stdout") == ["['--n', '3']"]


def test_code_can_come_from_a_snapshot_copied_writable(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "main.py").write_text(
        "import helper; open('next-to-me.txt', 'w').write('ok'); print(helper.VALUE)")
    (source / "helper.py").write_text("VALUE = 42\n")
    snapshot = Datastore(f"file://{tmp_path / 'store'}").publish_snapshot(source)
    result, sink = run(tmp_path, make_job(tmp_path, "", code={"snapshot": snapshot}))
    assert result.status == "succeeded", sink.lines
    assert sink.texts("stdout") == ["42"]


def test_inputs_from_an_object_store_are_downloaded(tmp_path: Path) -> None:
    store = Datastore(f"memory://executor-{uuid.uuid4().hex}")
    source = tmp_path / "remote-input"
    source.mkdir()
    (source / "x.txt").write_text("from far away")
    ref = store.publish(source)
    job = make_job(tmp_path, """
        import os
        from runner import context
        path = context.input_path("data")
        print(os.path.islink(path), (path / "x.txt").read_text())
    """, inputs={"data": ref})
    result, sink = run(tmp_path, job)
    assert result.status == "succeeded", sink.lines
    assert sink.texts("stdout") == ["False from far away"]


# --- Failures -----------------------------------------------------------------------------


@each_launch_mode
def test_a_python_error_gives_exit_and_its_traceback(tmp_path: Path, launch_mode: str) -> None:
    job = make_job(tmp_path, """
        from runner import context
        (context.output_path("out") / "partial.txt").write_text("half")
        def fail():
            raise ValueError("boom")
        fail()
    """, outputs=["out"])
    result, _ = run(tmp_path, job, launch_mode=launch_mode)
    assert (result.status, result.reason, result.exit_code) == ("failed", "exit", 1)
    assert result.message == "exit code 1: ValueError: boom"
    assert result.traceback.startswith("Traceback (most recent call last):")
    assert "in fail" in result.traceback and result.traceback.endswith("ValueError: boom")
    assert result.outputs == {}
    assert artifacts_and_temp_files(tmp_path) == []


def test_an_exit_code_without_a_traceback_reports_the_stderr_tail(tmp_path: Path) -> None:
    job = make_job(tmp_path, """
        import sys
        for i in range(80):
            print(f"line {i}", file=sys.stderr)
        sys.exit(3)
    """)
    result, _ = run(tmp_path, job)
    assert (result.reason, result.message, result.exit_code) == ("exit", "exit code 3: line 79", 3)
    assert result.traceback.splitlines() == [f"line {i}" for i in range(30, 80)]


@each_launch_mode
def test_a_step_killed_by_a_signal_says_so(tmp_path: Path, launch_mode: str) -> None:
    job = make_job(tmp_path, """
        import os, signal
        from runner import context
        (context.output_path("out") / "partial.txt").write_text("half")
        os.kill(os.getpid(), signal.SIGKILL)
    """, outputs=["out"])
    result, _ = run(tmp_path, job, launch_mode=launch_mode)
    assert (result.status, result.reason) == ("failed", "signal")
    assert result.message == "killed by signal 9" and result.exit_code is None
    assert result.outputs == {} and artifacts_and_temp_files(tmp_path) == []


@each_launch_mode
def test_a_timeout_kills_the_whole_process_group(tmp_path: Path, launch_mode: str) -> None:
    job = make_job(tmp_path, GRANDCHILD, timeout_s=1)
    started = time.monotonic()
    result, sink = run(tmp_path, job, launch_mode=launch_mode)
    elapsed = time.monotonic() - started
    assert (result.reason, result.message) == ("timeout", "timed out after 1 s")
    assert wait_gone(grandchild_pid(sink))
    assert elapsed < 1 + supervise.KILL_GRACE_S
    assert "timed out after 1 s: stopping the step" in sink.texts("system")


@each_launch_mode
def test_a_cancel_kills_the_whole_process_group(tmp_path: Path, launch_mode: str) -> None:
    sink = RecordingSink()

    def should_stop() -> str | None:
        return "canceled" if sink.texts("stdout") else None

    started = time.monotonic()
    result = execute(make_job(tmp_path, GRANDCHILD), sink, workdir_root=tmp_path / "work",
                     should_stop=should_stop, launch_mode=launch_mode)
    assert (result.status, result.reason, result.message) == ("failed", "canceled", "canceled")
    assert wait_gone(grandchild_pid(sink))
    assert time.monotonic() - started < 10


@each_launch_mode
def test_a_step_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launch_mode: str
) -> None:
    monkeypatch.setattr(supervise, "KILL_GRACE_S", 0.5)
    job = make_job(tmp_path, """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(1000)
    """)
    sink = RecordingSink()
    result = execute(job, sink, workdir_root=tmp_path / "work",
                     should_stop=lambda: "lost_contact" if sink.lines else None,
                     launch_mode=launch_mode)
    assert (result.reason, result.message) == ("lost_contact", "lost contact with the server")
    assert result.exit_code is None


@each_launch_mode
def test_grandchildren_left_behind_by_a_finished_step_are_killed(tmp_path: Path,
                                                                 launch_mode: str) -> None:
    job = make_job(tmp_path, """
        import subprocess
        child = subprocess.Popen(["sleep", "1000"])  # holds stdout open, never waited for
        print("grandchild", child.pid, flush=True)
    """)
    started = time.monotonic()
    result, sink = run(tmp_path, job, launch_mode=launch_mode)
    assert result.status == "succeeded"
    assert wait_gone(grandchild_pid(sink))
    assert time.monotonic() - started < streams.READER_JOIN_S


# --- Isolation and secrets ----------------------------------------------------------------


@each_launch_mode
def test_the_step_sees_an_allowlisted_environment_only(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       launch_mode: str) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:broker-password@redis:6379/0")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:db-password@db/x")
    monkeypatch.setenv("PIPELINES_WORKER_TOKEN", "worker-token-value")
    job = make_job(tmp_path, """
        import json, os
        print(json.dumps(dict(os.environ)))
    """, env={"MODE": "fast"}, secrets={"API_KEY": "declared-secret"})
    result, sink = run(tmp_path, job, launch_mode=launch_mode)
    assert result.status == "succeeded"
    env = json.loads(sink.texts("stdout")[0].replace("***", "declared-secret"))
    assert "CELERY_BROKER_URL" not in env and "DATABASE_URL" not in env
    assert "PIPELINES_WORKER_TOKEN" not in env
    assert env["MODE"] == "fast" and env["API_KEY"] == "declared-secret"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TMPDIR"] == os.path.join(env["HOME"], "tmp")
    assert env["PYTHONPATH"] == os.path.join(env["HOME"], ".pipelines", "lib")
    allowed = {"PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "PYTHONUNBUFFERED",
               "PYTHONPATH", "MODE", "API_KEY"}
    assert {k for k in env if not k.startswith("PIPELINES_")} <= allowed
    # Reading /proc/<ppid>/environ still works for a same-user step; S6 hardening (a
    # non-dumpable worker, or a separate user) is not part of the executor yet.


@each_launch_mode
def test_declared_secrets_are_masked_in_logs_and_errors(tmp_path: Path, launch_mode: str) -> None:
    job = make_job(tmp_path, """
        import os, sys
        key = os.environ["API_KEY"]
        print("the key is", key)
        print(f"key={key};again={key}", file=sys.stderr)
        raise RuntimeError(f"rejected {key}")
    """, secrets={"API_KEY": "hunter2-very-secret"})
    result, sink = run(tmp_path, job, launch_mode=launch_mode)
    assert "hunter2" not in sink.all_text()
    assert "hunter2" not in result.message + result.traceback
    assert sink.texts("stdout") == ["the key is ***"]
    assert "key=***;again=***" in sink.texts("stderr")
    assert result.message == "exit code 1: RuntimeError: rejected ***"


# --- Setup errors -------------------------------------------------------------------------


@each_launch_mode
def test_a_missing_interpreter_is_an_error_not_an_exception(tmp_path: Path,
                                                            launch_mode: str) -> None:
    job = make_job(tmp_path, "print('never')", python="/nonexistent/venv/bin/python")
    result, sink = run(tmp_path, job, launch_mode=launch_mode)
    assert (result.status, result.reason) == ("failed", "error")
    assert "/nonexistent/venv/bin/python" in result.message
    assert not (tmp_path / "work" / "run-1").exists()


def test_a_missing_snapshot_is_an_error(tmp_path: Path) -> None:
    digest = "sha256:" + "0" * 64
    ref = {"digest": digest, "uri": f"file://{tmp_path / 'store'}/artifacts/{'0' * 64}",
           "size": 1}
    result, _ = run(tmp_path, make_job(tmp_path, "", code={"snapshot": ref}))
    assert result.reason == "error" and "code snapshot" in result.message


def test_code_files_cannot_escape_the_working_directory(tmp_path: Path) -> None:
    job = make_job(tmp_path, "", code={"inline": {"../escape.py": "print(1)"}})
    result, _ = run(tmp_path, job)
    assert result.reason == "error" and "escape.py" in result.message
    assert not (tmp_path / "work" / "run-1" / "escape.py").exists()


def test_a_bad_arguments_parameter_is_an_error(tmp_path: Path) -> None:
    result, _ = run(tmp_path, make_job(tmp_path, "", params={"arguments": "--n 3"}))
    assert result.reason == "error" and "arguments" in result.message


@pytest.mark.parametrize("port", ["../escape", ".."])
def test_port_names_cannot_escape_their_folder(tmp_path: Path, port: str) -> None:
    result, _ = run(tmp_path, make_job(tmp_path, "", outputs=[port]))
    assert result.reason == "error" and "invalid port name" in result.message
