"""data-transfer copies files and folders between URLs and ports, checking SHA-256 digests.

S3 is a real S3-compatible server: moto's server mode on a free port of this machine.
"""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import s3fs
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from conftest import Step

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> tuple[s3fs.S3FileSystem, str]:
    fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=s3_endpoint,
                           skip_instance_cache=True)
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return fs, name


@pytest.fixture
def s3_env(s3_endpoint: str) -> dict[str, str]:
    """What a node would declare: credentials (as secrets) and the endpoint."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def report(step: Step, result: Any) -> dict[str, Any]:
    return json.loads((step.fetch(result.outputs["report"]) / "transfer.json").read_text())


def test_it_uploads_its_input_folder_to_s3(step: Step, bucket: tuple, s3_env: dict) -> None:
    fs, name = bucket
    source = step.publish_text({"a.csv": "x,y\n1,2\n", "nested/b.txt": "hello"})
    result, sink = step.ok("data-transfer@1", {"destination_url": f"s3://{name}/data/"},
                           {"source": source}, env=s3_env)
    assert sorted(fs.find(name)) == [f"{name}/data/a.csv", f"{name}/data/nested/b.txt"]
    assert fs.cat(f"{name}/data/nested/b.txt") == b"hello"
    summary = report(step, result)
    assert summary["files"] == [
        {"path": "a.csv", "bytes": 8, "sha256": sha256(b"x,y\n1,2\n")},
        {"path": "nested/b.txt", "bytes": 5, "sha256": sha256(b"hello")},
    ]
    assert summary["verified"] is True and sink.metric_values("files") == [2]


def test_it_downloads_a_file_from_s3_to_its_output(step: Step, bucket: tuple,
                                                   s3_endpoint: str) -> None:
    fs, name = bucket
    payload = b"0123456789" * 1000
    fs.pipe(f"{name}/in/blob.bin", payload)
    params = {"source_url": f"s3://{name}/in/blob.bin", "expected_sha256": sha256(payload),
              "source_options": {"endpoint_url": s3_endpoint}}
    result, _ = step.ok("data-transfer@1", params, env=CREDENTIALS)
    assert (step.fetch(result.outputs["destination"]) / "blob.bin").read_bytes() == payload


@pytest.mark.slow
def test_it_copies_between_urls_and_refuses_to_overwrite(step: Step, bucket: tuple,
                                                         s3_env: dict) -> None:
    fs, name = bucket
    fs.pipe(f"{name}/src/one.txt", b"one")
    fs.pipe(f"{name}/src/two/three.txt", b"three")
    local = step.tmp_path / "copy"
    params = {"source_url": f"s3://{name}/src", "destination_url": f"file://{local}"}
    step.ok("data-transfer@1", params, env=s3_env)
    assert (local / "two" / "three.txt").read_bytes() == b"three"
    message = step.failed("data-transfer@1", params, env=s3_env)
    assert message == (f"the destination already holds {local}/one.txt and 1 more; "
                       "set overwrite to replace")
    step.ok("data-transfer@1", {**params, "overwrite": True}, env=s3_env)


def test_a_digest_that_differs_copies_nothing(step: Step, bucket: tuple, s3_env: dict) -> None:
    fs, name = bucket
    fs.pipe(f"{name}/file.txt", b"actual")
    params = {"source_url": f"s3://{name}/file.txt", "destination_url": f"s3://{name}/copy.txt",
              "expected_sha256": sha256(b"expected")}
    message = step.failed("data-transfer@1", params, env=s3_env)
    assert message == (f"the source s3://{name}/file.txt has SHA-256 {sha256(b'actual')}, not "
                       f"the expected {sha256(b'expected')}; nothing was copied")
    assert not fs.exists(f"{name}/copy.txt")


def test_a_missing_source_fails(step: Step, bucket: tuple, s3_env: dict) -> None:
    _, name = bucket
    message = step.failed("data-transfer@1", {"source_url": f"s3://{name}/nothing-here"},
                          env=s3_env)
    assert message == f"the source s3://{name}/nothing-here does not exist"
    message = step.failed("data-transfer@1", {})
    assert message == "nothing to copy: give a source URL or connect the source input"
