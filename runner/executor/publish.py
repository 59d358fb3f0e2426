"""How a step ended, as a StepResult; its outputs are published only when it exits 0 (R13)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from runner.datastore import Datastore, DatastoreError, LinkOutside
from runner.executor.prepare import Prepared
from runner.executor.streams import StreamSink
from runner.messages import ArtifactRef, StepJob

TRACEBACK_TAIL_LINES = 50  # reported when stderr holds no traceback
_MAX_SUMMARY_CHARS = 500

Reason = Literal["exit", "signal", "timeout", "canceled", "error", "lost_contact"]


@dataclass
class StepResult:
    """How a step ended; the worker turns it into a "finished" or "failed" event."""

    status: Literal["succeeded", "failed"]
    reason: Reason | None  # None on success
    message: str  # for people: "exit code 3", "killed by signal 9", "timed out after 5 s"
    exit_code: int | None
    traceback: str  # the Python traceback from stderr, else its last lines; secrets masked
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)  # only on success


class _PublishError(Exception):
    """An output of a successful step could not be published."""


def step_result(job: StepJob, prepared: Prepared, returncode: int,
                stop_reason: Reason | None, stream: StreamSink) -> StepResult:
    """The result of a step that exited with `returncode`, after being stopped for
    `stop_reason` if that is not None; publishes its outputs if it succeeded."""
    traceback, summary = find_traceback(list(stream.stderr_tail))
    exit_code = returncode if returncode >= 0 else None
    if stop_reason is not None:
        message = stop_message(stop_reason, job["timeout_s"])
        return failed(stop_reason, message, exit_code, traceback)
    if returncode < 0:
        return failed("signal", f"killed by signal {-returncode}", None, traceback)
    if returncode > 0:
        summary = summary or _last_word(stream)
        message = f"exit code {returncode}" + (f": {summary}" if summary else "")
        return failed("exit", message, returncode, traceback)
    try:
        outputs = _publish_outputs(job, prepared, stream)
    except _PublishError as exc:
        stream.system(str(exc))
        return failed("error", str(exc), 0, "")
    return StepResult("succeeded", None, "succeeded", 0, "", outputs)


def _last_word(stream: StreamSink) -> str | None:
    """Without a traceback, a script's own last line on stderr says why it failed."""
    last = next((line for line in reversed(stream.stderr_tail) if line.strip()), None)
    return last[:_MAX_SUMMARY_CHARS] if last else None


def failed(reason: Reason, message: str, exit_code: int | None = None,
           traceback: str = "") -> StepResult:
    return StepResult("failed", reason, message, exit_code, traceback, {})


def stop_message(reason: Reason, timeout_s: float) -> str:
    if reason == "timeout":
        return f"timed out after {timeout_s:g} s"
    if reason == "lost_contact":
        return "lost contact with the server"
    return "canceled"


def find_traceback(lines: list[str]) -> tuple[str, str | None]:
    """The Python traceback in stderr lines and its last line ("ValueError: boom").

    Without a traceback: the last TRACEBACK_TAIL_LINES lines and None.
    """
    starts = [i for i, line in enumerate(lines)
              if line.startswith("Traceback (most recent call last):")]
    if not starts:
        return "\n".join(lines[-TRACEBACK_TAIL_LINES:]), None
    # From the first header, to keep chained exceptions; the summary follows the last one.
    summary = next((line for line in lines[starts[-1] + 1:] if line and not line[0].isspace()),
                   None)
    return "\n".join(lines[starts[0]:]), summary[:_MAX_SUMMARY_CHARS] if summary else None


def _publish_outputs(job: StepJob, prepared: Prepared,
                     stream: StreamSink) -> dict[str, ArtifactRef]:
    """Publish each output; a link in one may lead only inside it or into the step's inputs
    (a step that passes an input on unchanged), never elsewhere on the worker."""
    workdir = prepared.cwd.parent
    _check_not_linked(workdir)
    inputs = _input_folders(job, workdir)
    refs = {}
    for port, path in prepared.outputs.items():
        if not os.path.lexists(path):
            path.mkdir(parents=True)  # a removed output folder is an empty output
        try:
            refs[port] = prepared.store.publish(path, links_within=inputs)
        except LinkOutside as exc:
            raise _PublishError(f"output {port!r}: {exc.link} is a link to {exc.target}, "
                                "outside the output folder; write the file itself") from exc
        except (DatastoreError, OSError) as exc:
            raise _PublishError(f"cannot publish output {port!r}: {exc}") from exc
        stream.system(f"output {port!r}: {refs[port]['digest']} ({refs[port]['size']} bytes)")
    return refs


def _check_not_linked(workdir: Path) -> None:
    """The folders that outputs and inputs are found by must be the executor's own: a step
    that put a link in their place would have the worker read wherever that leads."""
    for folder in (workdir, workdir / "outputs", workdir / "inputs"):
        if folder.is_symlink():
            raise _PublishError(f"the step replaced the folder {folder.name!r} of its working "
                                f"directory with a link to {os.readlink(folder)}")


def _input_folders(job: StepJob, workdir: Path) -> list[str]:
    """The real paths of the step's inputs, from the job and not from links the step could
    have changed: the place in the working directory (a downloaded copy, or hard links for a
    step user), and the artifact itself in a local datastore (which a symbolic link leads to)."""
    inputs = os.path.join(os.path.realpath(workdir), "inputs")
    folders = []
    for port, ref in job["inputs"].items():
        folders.append(os.path.join(inputs, port))
        store = Datastore.containing(ref)
        if store.is_local:
            folders.append(os.path.realpath(store.local_artifact_path(ref["digest"])))
    return folders
