"""The SDK follows a run over its socket, as the server (the same ASGI stack as production)
broadcasts it: a step's lines reach the caller while the step still runs, with no polling
(docs/reliability.md S14). Where the socket cannot open (the WSGI live server of the other SDK
tests), the SDK polls: tests/integration/sdk/test_runs.py."""

import io

import pytest

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.compute.services import issue_worker_key
from runner.sdk import Client, Pipeline, PythonScriptStep
from tests.support import WorkerProcess, unique_target

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# Prints, then holds until the test has seen that line, so it can only have come live.
WAITING_STEP = """
import sys, time
from pathlib import Path
print('ready', flush=True)
flag = Path(sys.argv[1])
deadline = time.monotonic() + 60
while not flag.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print('released' if flag.exists() else 'never released', flush=True)
"""


@pytest.fixture
def live_target(asgi_server, workspace):
    target = ComputeTarget.objects.create(workspace=workspace, name=unique_target(),
                                          max_concurrency=1)
    # The step waits for a file the test writes outside the step's folder, where a confined
    # step cannot look (S11): this worker leaves its steps unconfined.
    worker = WorkerProcess(target.name, asgi_server.url, key=issue_worker_key(target),
                           extra_env={"PIPELINES_STEP_ISOLATION": "none"})
    yield target.name
    worker.stop()


class ReleasingOutput(io.StringIO):
    """What the SDK prints; seeing `[wait] ready` lets the step go on."""

    def __init__(self, flag) -> None:
        super().__init__()
        self.flag = flag

    def write(self, text: str) -> int:
        if "[wait] ready" in text:
            self.flag.touch()
        return super().write(text)


def test_follow_gets_the_steps_lines_over_the_socket_while_it_runs(
        asgi_server, live_target, owner, workspace, tmp_path):
    key = ApiToken.issue(workspace, owner, "sdk", ["read", "run", "publish"])[1]
    flag = tmp_path / "release"
    with Client(asgi_server.url, key) as client:
        step = PythonScriptStep("wait", code=WAITING_STEP, arguments=[str(flag)],
                                compute_target=live_target, allow_reuse=False)
        run = Pipeline(client, [step], name="live").submit()
        run.quiet_check_s = 3600  # nothing over REST while the socket is quiet: events only
        output = ReleasingOutput(flag)
        run.wait(out=output, poll_s=3600, timeout=120)
    shown = output.getvalue()
    assert run.status == "succeeded", shown
    assert "[wait] ready" in shown and "[wait] released" in shown, shown
    assert f"run {run.id} succeeded: 1/1 steps done" in shown
