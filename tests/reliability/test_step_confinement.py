"""S11: a step cannot read or write the worker's or the server's own state.

A real worker runs real steps that try the database, the key files in var/, the datastore
beyond their inputs and another run's working folder; every one is refused, while the test
(the server's user) reads each of them. Once with Landlock as the worker's user, once as the
step user (the worker runs as root): that level needs the interpreter reachable by an
unprivileged user, which .ci/run arranges (PIPELINES_REQUIRE_STEP_USER=1 there turns its
absence into a failure instead of a skip).
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.runs.models import Run
from runner.broker import var_dir
from tests.integration.runs.specs import edge, script
from tests.support import WorkerProcess, unique_target, wait_until

pytestmark = pytest.mark.timeout(180)

TERMINAL_RUN_STATES = ("succeeded", "failed", "canceled")

WRITE = "from runner import context; (context.output_path('data') / 'value.txt').write_text('41')"
TRY = """
    import json, os
    from pathlib import Path
    from runner import context

    print('INPUT', (context.input_path('data') / 'value.txt').read_text())
    for name, path in json.loads({targets!r}).items():
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                open(path, 'rb').read(1)
            print('READ', name)
        except OSError as exc:
            print('REFUSED-READ', name, exc.errno)
        try:
            open(os.path.join(path, 'written') if os.path.isdir(path) else path, 'ab').close()
            print('WROTE', name)
        except OSError as exc:
            print('REFUSED-WRITE', name, exc.errno)
    """


def _state_files(tmp_var: Path, other_workdir: Path, key: str,
                 stand_ins: list[Path]) -> dict[str, str]:
    """What a step must not reach (the datastore is there once the first output is). The
    server's key files and, on PostgreSQL, the embedded database are written as stand-ins
    where they are missing (listed in `stand_ins`, removed afterwards)."""
    database = (connection.settings_dict["NAME"] if connection.vendor == "sqlite"
                else tmp_var / "db.sqlite3")
    for path, text in ((Path(database), "SQLite format 3"),
                       (Path(settings.SECRET_KEY_FILE), "a-secret-key-the-server-signs-with"),
                       (Path(settings.PIPELINES_SECRETS_KEY_FILE), "a-fernet-key"),
                       (tmp_var / "worker.key", key),
                       (tmp_var / "run" / "valkey.key", "the-embedded-brokers-password")):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o600)
            stand_ins.append(path)
    return {"database": str(database), "secret_key": str(settings.SECRET_KEY_FILE),
            "secrets_key": str(settings.PIPELINES_SECRETS_KEY_FILE),
            "worker_key": str(tmp_var / "worker.key"),
            "broker_password": str(tmp_var / "run" / "valkey.key"),
            "datastore": settings.DATASTORE_URL.removeprefix("file://"),
            "other_run": str(other_workdir / "params.json"), "var": str(tmp_var)}


def _readable_by_the_server(files: dict[str, str]) -> None:
    for path in files.values():
        if os.path.isdir(path):
            assert os.listdir(path)
        else:
            with open(path, "rb") as readable:
                assert readable.read(1)


def _run(workspace, owner, target, nodes, edges=()):
    spec = {"parameters": {}, "edges": list(edges), "nodes": nodes}
    pipeline = Pipeline.objects.create(workspace=workspace, name=f"p-{unique_target()}",
                                       spec=spec)
    run = submit_run(pipeline, user=owner)
    wait_until(lambda: Run.objects.get(pk=run.pk).status in TERMINAL_RUN_STATES, timeout=90)
    return run


def _output(run, node):
    return "\n".join(run.steps.get(node=node).log_lines.values_list("text", flat=True))


def _kept_workdir(workspace, owner, target) -> Path:
    """Another run's working folder, kept after its step (PIPELINES_KEEP_WORKDIR)."""
    run = _run(workspace, owner, target,
               [script("first", "import os; print('CWD', os.getcwd())", target=target,
                       allow_reuse=False)])
    line = next(x for x in _output(run, "first").splitlines() if x.startswith("CWD "))
    workdir = Path(line.removeprefix("CWD ")).parent
    assert (workdir / "params.json").exists()
    return workdir


def _level_in_force(worker: WorkerProcess) -> str:
    line = next(x for x in worker.output().splitlines() if "step isolation: " in x)
    return line.split("step isolation: ", 1)[1].split(":", 1)[0]


LEVELS = {"landlock": {"PIPELINES_STEP_ISOLATION": "landlock"},
          "step-user": {"PIPELINES_STEP_ISOLATION": "auto"}}


@pytest.mark.parametrize("launch_mode", ["fork", "spawn"])
@pytest.mark.parametrize("level", LEVELS)
def test_a_step_cannot_reach_the_servers_or_the_workers_state(engine, workspace, owner, client,
                                                              level, launch_mode):
    if level == "step-user" and os.geteuid() != 0:
        pytest.skip("the step-user level needs a worker running as root")
    target = unique_target()
    key = issue_worker_key(ComputeTarget.objects.create(workspace=workspace, name=target))
    worker = WorkerProcess(target, engine.url, key=key, extra_env={
        **LEVELS[level], "PIPELINES_STEP_LAUNCH": launch_mode, "PIPELINES_KEEP_WORKDIR": "1"})
    kept: list[Path] = []  # the runs' folders, kept by PIPELINES_KEEP_WORKDIR
    stand_ins: list[Path] = []
    try:
        found = _level_in_force(worker)
        if found != level and os.environ.get("PIPELINES_REQUIRE_STEP_USER") != "1":
            pytest.skip(f"level {level} is not available here: {worker.output()[-600:]}")
        assert found == level, worker.output()
        other = _kept_workdir(workspace, owner, target)
        kept.append(other.parent)
        files = _state_files(var_dir(), other, key, stand_ins)
        run = _run(workspace, owner, target, [
            script("a", WRITE, target=target, outputs=["data"], allow_reuse=False),
            script("peek", TRY.format(targets=json.dumps(files)), target=target,
                   inputs=["data"], allow_reuse=False)], [edge("a.data", "peek.data")])
        kept.append(other.parent.parent / str(run.pk))
        output = _output(run, "a") + _output(run, "peek")
        if "INPUT 41" in output:  # else the datastore may not be there yet
            _readable_by_the_server(files)
        health = client.get("/healthz").json()["step_isolation"]
    finally:
        worker.stop()
        for run_folder in kept:
            shutil.rmtree(run_folder, ignore_errors=True)
        for path in stand_ins:
            path.unlink()
    assert "INPUT 41" in output, output  # its own input it reads
    for name in files:
        assert f"REFUSED-READ {name}" in output, output
        assert f"REFUSED-WRITE {name}" in output, output
    assert key not in output
    assert level in health["levels"], health
