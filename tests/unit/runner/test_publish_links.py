"""Publishing a step's outputs never follows a link out of the output folder.

Each test prepares a real working directory with the executor's own `prepare`, plays the step
by making links in it, then publishes as the executor does after exit 0. A link may lead
inside its output (it is stored as the file or folder it points to) or into the step's inputs
(a step passing an input on); anything else fails the step, naming the link. Every backend:
a local folder, fsspec's memory store, and S3 (moto's server on a free port).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from runner.datastore import Datastore, DatastoreError, LinkOutside, tree_digest
from runner.executor import streams
from runner.executor.prepare import Prepared, make_workdir, prepare
from runner.executor.publish import StepResult, step_result
from runner.messages import ArtifactRef, StepJob, parse_step_job

pytestmark = pytest.mark.timeout(60)  # the code before this guarantee walked `/` for ever

PASSWD = Path("/etc/passwd")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(params=["file", "memory", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'store'}"
    if request.param == "memory":
        return f"memory://links-{uuid.uuid4().hex}"
    endpoint = request.getfixturevalue("s3_endpoint")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    bucket = f"links-{uuid.uuid4().hex[:12]}"
    store = Datastore(f"s3://{bucket}")
    store.fs.mkdir(bucket)
    return f"s3://{bucket}/store"


class Step:
    """A prepared step of a given datastore, with an output `model` and an input `data`."""

    def __init__(self, tmp_path: Path, store_url: str) -> None:
        self.store = Datastore(store_url)
        source = tmp_path / "source"
        source.mkdir()
        (source / "rows.txt").write_text("1\n2\n")
        self.input: ArtifactRef = self.store.publish(source)
        self.job = make_job(store_url, inputs={"data": self.input}, outputs=["model", "other"])
        self.workdir = make_workdir(tmp_path / "work", self.job)
        self.prepared: Prepared = prepare(self.job, self.workdir)
        self.model = self.prepared.outputs["model"]
        self.sink = RecordingSink()

    def publish(self) -> StepResult:
        stream = streams.StreamSink(self.sink, streams.Masker([]))
        return step_result(self.job, self.prepared, 0, None, stream)

    def link(self, name: str, target: str | Path) -> Path:
        """A link at model/<name> to `target`, as a step would make it."""
        path = self.model / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        return path

    def artifacts(self) -> list[str]:
        """Every file in the datastore's artifacts, the input's included."""
        return self.store.fs.find(f"{self.store.root}/artifacts")

    def fetch(self, ref: ArtifactRef, dest: Path) -> Path:
        Datastore.containing(ref).materialize(ref, dest, link=False)
        return dest


class RecordingSink:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def log(self, stream: str, text: str, time: float) -> None:
        self.lines.append((stream, text))

    def metric(self, key: str, value: float, step: int | None, time: float) -> None:
        pass


def make_job(store_url: str, **overrides: Any) -> StepJob:
    job = {
        "version": 1, "run_id": "run-1", "step_run_id": 1, "node": "train", "attempt": 1,
        "attempt_id": uuid.uuid4().hex, "token": "t" * 32,
        "server_url": "http://127.0.0.1:8000", "component": "python-script@1",
        "command": ["{python}", "{script}"], "code": {"inline": {"main.py": "pass\n"}},
        "params": {}, "inputs": {}, "outputs": [], "env": {}, "secrets": {}, "python": None,
        "datastore_url": store_url, "timeout_s": 30, "heartbeat_s": 5.0, "lost_contact_s": 20.0,
    }
    job.update(overrides)
    return parse_step_job(job)


@pytest.fixture
def step(tmp_path: Path, store_url: str) -> Step:
    return Step(tmp_path, store_url)


def assert_refused(step: Step, message: str) -> None:
    """The step failed with `message`, said it in its log, and published nothing new."""
    before = step.artifacts()
    result = step.publish()
    assert (result.status, result.reason, result.outputs) == ("failed", "error", {}), result
    assert result.message == message
    assert ("system", message) in step.sink.lines
    assert step.artifacts() == before


def outside(link: str, target: str | Path) -> str:
    return (f"output 'model': {link} is a link to {target}, outside the output folder; "
            "write the file itself")


# --- Links out of the output folder fail the step -----------------------------------------


def test_a_link_to_a_file_of_the_worker_fails_the_step(step: Step) -> None:
    (step.model / "weights.txt").write_text("w")
    step.link("passwd", PASSWD)
    assert_refused(step, outside("model/passwd", PASSWD))


def test_a_link_to_the_root_folder_fails_without_walking_it(step: Step) -> None:
    step.link("everything", "/")
    assert_refused(step, outside("model/everything", "/"))


def test_a_link_to_a_sibling_folder_outside_the_outputs_fails(step: Step) -> None:
    step.link("code", step.workdir / "code")
    assert_refused(step, outside("model/code", step.workdir / "code"))


def test_a_link_to_another_output_fails(step: Step) -> None:
    (step.prepared.outputs["other"] / "x.txt").write_text("x")
    step.link("x.txt", step.prepared.outputs["other"] / "x.txt")
    assert_refused(step, outside("model/x.txt", step.prepared.outputs["other"] / "x.txt"))


def test_a_relative_link_climbing_out_with_dot_dot_fails(step: Step) -> None:
    step.link("deep/params.json", "../../../params.json")
    real = os.path.realpath(step.workdir / "params.json")
    assert_refused(step, outside("model/deep/params.json", f"../../../params.json ({real})"))


def test_a_dangling_link_fails(step: Step) -> None:
    step.link("gone", "nowhere")
    assert_refused(step, "cannot publish output 'model': model/gone is a dangling symbolic "
                         "link to nowhere")


def test_a_link_to_its_own_folder_is_a_loop(step: Step) -> None:
    step.link("sub/again", "..")
    assert_refused(step, "cannot publish output 'model': symbolic link loop at model/sub/again")


def test_links_to_each_other_are_a_loop(step: Step) -> None:
    step.link("a", "b")
    step.link("b", "a")
    assert_refused(step, "cannot publish output 'model': model/a is a symbolic link loop (b)")


def test_an_output_that_is_itself_a_link_out_fails(step: Step) -> None:
    step.model.rmdir()
    step.model.symlink_to("/etc")
    assert_refused(step, outside("model", "/etc"))


def test_an_outputs_folder_replaced_by_a_link_fails(step: Step, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "model").mkdir(parents=True)
    (elsewhere / "model" / "secret.txt").write_text("not the step's")
    (elsewhere / "other").mkdir()
    outputs = step.workdir / "outputs"
    os.rename(outputs, tmp_path / "moved")
    outputs.symlink_to(elsewhere)
    assert_refused(step, "the step replaced the folder 'outputs' of its working directory "
                         f"with a link to {elsewhere}")


def test_an_input_replaced_by_a_link_opens_no_way_out(step: Step) -> None:
    data = step.workdir / "inputs" / "data"
    os.rename(data, step.workdir / "tmp" / "data")
    data.symlink_to("/etc")
    step.link("passwd", data / "passwd")
    assert_refused(step, outside("model/passwd", data / "passwd"))


# --- Links that stay inside, or lead into an input, are published as what they point to ---


def test_links_inside_the_output_are_stored_as_files_and_folders(step: Step,
                                                                 tmp_path: Path) -> None:
    (step.model / "v1").mkdir()
    (step.model / "v1" / "weights.txt").write_text("w1")
    step.link("latest", "v1")
    step.link("nested/best.txt", "../v1/weights.txt")
    result = step.publish()
    assert result.status == "succeeded", result
    plain = tmp_path / "plain"
    for folder in ("v1", "latest", "nested"):
        (plain / folder).mkdir(parents=True)
    for path in ("v1/weights.txt", "latest/weights.txt", "nested/best.txt"):
        (plain / path).write_text("w1")
    assert result.outputs["model"]["digest"] == tree_digest(plain)[0]
    fetched = step.fetch(result.outputs["model"], tmp_path / "fetched")
    assert not any(path.is_symlink() for path in fetched.rglob("*"))
    assert (fetched / "latest" / "weights.txt").read_text() == "w1"
    assert (fetched / "nested" / "best.txt").read_text() == "w1"


def test_an_output_linked_to_an_input_passes_the_input_on(step: Step) -> None:
    step.model.rmdir()
    step.model.symlink_to((step.workdir / "inputs" / "data").resolve())
    result = step.publish()
    assert result.status == "succeeded", result
    assert result.outputs["model"]["digest"] == step.input["digest"]


def test_a_link_into_an_input_is_stored_as_the_file(step: Step, tmp_path: Path) -> None:
    step.link("rows.txt", step.workdir / "inputs" / "data" / "rows.txt")
    result = step.publish()
    assert result.status == "succeeded", result
    fetched = step.fetch(result.outputs["model"], tmp_path / "fetched")
    assert (fetched / "rows.txt").read_text() == "1\n2\n"
    assert not (fetched / "rows.txt").is_symlink()


# --- The datastore itself -------------------------------------------------------------------


def test_the_datastore_refuses_a_link_out_of_what_it_publishes(store_url: str,
                                                               tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "passwd").symlink_to(PASSWD)
    with pytest.raises(LinkOutside) as caught:
        Datastore(store_url).publish(folder)
    assert (caught.value.link, caught.value.target) == ("folder/passwd", str(PASSWD))
    (tmp_path / "file").symlink_to(PASSWD)
    with pytest.raises(LinkOutside, match="file is a link to /etc/passwd"):
        Datastore(store_url).publish(tmp_path / "file")


@pytest.mark.parametrize("path", ["../escaped", "/abs", "a/../../escaped", "a//b", ""])
def test_a_manifest_naming_a_path_out_of_the_download_is_refused(tmp_path: Path,
                                                                 path: str) -> None:
    """Whoever can write to an object store can write a manifest; downloading an input
    must not write outside the step's folder for it."""
    store = Datastore(f"memory://links-{uuid.uuid4().hex}")
    source = tmp_path / "source"
    source.mkdir()
    (source / "x.txt").write_text("x")
    ref = store.publish(source)
    marker = store.artifact_uri(ref["digest"]).split("://", 1)[1] + "._complete"
    manifest = json.loads(store.fs.cat_file(marker))
    manifest["entries"][0]["path"] = path
    store.fs.pipe_file(marker, json.dumps(manifest).encode())
    dest = tmp_path / "work" / "inputs" / "data"
    dest.parent.mkdir(parents=True)
    with pytest.raises(DatastoreError, match="unsafe path"):
        store.materialize(ref, dest)
    assert not (tmp_path / "work" / "inputs" / "escaped").exists()
    assert not (tmp_path / "work" / "escaped").exists()
