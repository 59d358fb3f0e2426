"""Prepare a step's working directory, its environment and its command.

    <workdir_root>/<run_id>/<node>-a<attempt>-<random>/
        code/          the step's files; the current directory of the process
        inputs/<port>  each input (a symbolic link on a local datastore)
        outputs/<port> an empty folder per output, published after success
        params.json    the resolved parameters
        tmp/           TMPDIR
        .pipelines/lib the step-side `runner` package (context.py alone) for PYTHONPATH

The environment is built from an allowlist, never the worker's own (S6).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from runner import context, isolation
from runner.datastore import Datastore, DatastoreError, remove_tree
from runner.messages import ArtifactRef, StepJob

KEEP_WORKDIR_VAR = "PIPELINES_KEEP_WORKDIR"
ALLOWED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")  # all that the step inherits from the worker
NO_HOME = "/nonexistent"  # an interpreter's HOME until its step launches: no user site-packages


class SetupError(Exception):
    """The step could not be prepared or started; the text is meant for the step's owner."""


@dataclass
class Prepared:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    outputs: dict[str, Path]
    store: Datastore
    forkable: bool  # can be forked from a template interpreter (runner.executor.template)
    confinement: dict[str, Any] | None = None  # applied before step code runs (runner.sandbox)


def make_workdir(root: Path, job: StepJob) -> Path:
    prefix = f"{_safe_name(job['node'])}-a{job['attempt']}-"
    parent = root / _safe_name(job["run_id"])
    for _ in range(5):
        try:
            parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        except (FileNotFoundError, FileExistsError):
            # Another step of this run removed the empty run folder meanwhile: mkdir sees it
            # exist, then finds no folder there, and says so with FileExistsError.
            continue
    raise SetupError(f"could not create a working directory under {parent}")


def remove_workdir(workdir: Path) -> None:
    try:
        remove_tree(workdir)
        workdir.parent.rmdir()  # the run's folder, once its last step is gone
    except OSError:
        pass  # Other steps of the run still use the folder, or the step left it unremovable.


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".")[:100] or "_"


def prepare(job: StepJob, workdir: Path,
            isolated: isolation.Isolation | None = None) -> Prepared:
    """Everything the step needs in `workdir`; at an `isolated` level other than none, the
    folder is the step user's and the step is confined to it (S11)."""
    _check_ports(job["inputs"])
    _check_ports(job["outputs"])
    store = _open_store(job["datastore_url"])
    code_dir = workdir / "code"
    _write_code(job["code"], code_dir)
    as_step_user = isolated is not None and isolated.uid is not None
    inputs = _materialize_inputs(job["inputs"], workdir / "inputs", as_step_user)
    outputs = {port: workdir / "outputs" / port for port in job["outputs"]}
    for path in outputs.values():
        path.mkdir(parents=True)
    params_file = workdir / "params.json"
    params_file.write_text(json.dumps(job["params"]), encoding="utf-8")
    (workdir / "tmp").mkdir()
    argv = _command(job)
    paths = {"inputs": inputs, "outputs": outputs, "params": params_file,
             "lib": _install_context(workdir / ".pipelines" / "lib")}
    env = _environment(job, workdir, argv[0], paths)
    confinement = None
    if isolated is not None:
        isolation.hand_over(workdir, isolated)
        confinement = isolation.confinement(isolated, workdir, argv[0], list(inputs.values()))
    return Prepared(argv=argv, cwd=code_dir, env=env, outputs=outputs, store=store,
                    forkable=forkable(job), confinement=confinement)


def _check_ports(ports: Iterable[str]) -> None:
    seen: dict[str, str] = {}
    for port in ports:
        if port in ("", ".", "..") or "/" in port or "\0" in port:
            raise SetupError(f"invalid port name {port!r}")
        variable = context.port_variable("", port)
        if seen.get(variable, port) != port:
            raise SetupError(f"ports {seen[variable]!r} and {port!r} map to one variable name")
        seen[variable] = port


def _open_store(url: str) -> Datastore:
    try:
        return Datastore(url)
    except Exception as exc:  # fsspec raises many kinds for a bad URL
        raise SetupError(f"cannot open the datastore {url!r}: {exc}") from exc


def _write_code(code: dict[str, Any], code_dir: Path) -> None:
    if "inline" in code:
        code_dir.mkdir()
        for name, text in code["inline"].items():
            target = _inside(code_dir, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return
    ref = code["snapshot"]
    try:
        # Copied, not linked: scripts may write next to themselves.
        Datastore.containing(ref).materialize(ref, code_dir, link=False)
    except (DatastoreError, OSError) as exc:
        raise SetupError(f"cannot fetch the code snapshot {ref['digest']}: {exc}") from exc
    if not code_dir.is_dir():
        raise SetupError(f"the code snapshot {ref['digest']} is a file, not a folder")


def _inside(folder: Path, name: str) -> Path:
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise SetupError(f"code file name {name!r} must be a relative path inside the step")
    return folder.joinpath(*relative.parts)


def _materialize_inputs(refs: dict[str, ArtifactRef], folder: Path,
                        unlinked: bool) -> dict[str, Path]:
    """Each input in `folder`: a symbolic link into a local datastore, or with `unlinked`
    (for a step user, to whom var/ is closed) hard links to its read-only files."""
    folder.mkdir()
    paths = {}
    for port, ref in refs.items():
        dest = folder / port
        try:
            Datastore.containing(ref).materialize(ref, dest)
            if unlinked and dest.is_symlink():
                _replace_with_hard_links(dest)
        except (DatastoreError, OSError) as exc:
            raise SetupError(f"cannot fetch input {port!r}: {exc}") from exc
        paths[port] = dest
    return paths


def _replace_with_hard_links(link: Path) -> None:
    """The artifact's tree again at `link`, its files hard-linked: they stay the worker's and
    read-only, so the step reads them without reaching the datastore. Copied where a link
    cannot be made (another file system)."""
    source = os.path.realpath(link)
    link.unlink()
    if os.path.isdir(source):
        shutil.copytree(source, link, copy_function=_link_or_copy)
    else:
        _link_or_copy(source, str(link))


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _install_context(lib: Path) -> Path:
    """Give the step `from runner import context` and nothing else of the worker's packages.

    Putting the folder above the installed `runner` on PYTHONPATH would also hand the step the
    worker's whole site-packages (or the Django project), which can shadow its own libraries.
    """
    package = lib / "runner"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""The step side of runner."""\n', encoding="utf-8")
    shutil.copyfile(context.__file__, package / "context.py")
    return lib


# Variables read once as a process starts, by Python (its PYTHONPATH's sitecustomize, the user
# site-packages under HOME), the dynamic loader (a later dlopen still searches the
# LD_LIBRARY_PATH it started with) or libc.
_READ_AT_START = re.compile(r"PYTHON.*|LD_.*|LC_.*|MALLOC_.*|LANG|LANGUAGE|TZ|GLIBC_TUNABLES|HOME")


def forkable(job: StepJob) -> bool:
    """Whether `python <script | -m module | -c code> ...` is what the step runs, with nothing
    of its own that acts while the process starts: interpreter options, or variables read at
    start. Only then is a step forked from a template interpreter the same as one started as
    itself."""
    command = job["command"]
    if len(command) < 2 or command[0] != "{python}":
        return False
    if command[1].startswith("-") and command[1] not in ("-c", "-m"):
        return False
    return not any(_READ_AT_START.fullmatch(name) for name in (*job["env"], *job["secrets"]))


def _command(job: StepJob) -> list[str]:
    params = job["params"]
    script, arguments = params.get("script", "main.py"), params.get("arguments", [])
    if not isinstance(script, str) or not script:
        raise SetupError("parameter 'script' must be a file name")
    if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
        raise SetupError("parameter 'arguments' must be a list of strings")
    python = job["python"] or sys.executable
    argv = [part.replace("{python}", python).replace("{script}", script)
            for part in job["command"]]
    return argv + arguments


def shared_environment(program: str) -> dict[str, str]:
    """What every step's environment starts from; an interpreter started ahead has it."""
    env = {name: os.environ[name] for name in ALLOWED_ENV if name in os.environ}
    # The interpreter's folder first, as an activated virtualenv would have it.
    folder = os.path.dirname(program) if os.path.isabs(program) else ""
    env["PATH"] = os.pathsep.join(p for p in (folder, env.get("PATH", os.defpath)) if p)
    env.update(HOME=NO_HOME, PYTHONUNBUFFERED="1")
    return env


def _environment(job: StepJob, workdir: Path, program: str,
                 paths: dict[str, Any]) -> dict[str, str]:
    env = shared_environment(program)
    env.update(HOME=str(workdir), TMPDIR=str(workdir / "tmp"))
    env.update(job["env"])
    env.update(job["secrets"])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(paths["lib"]), env.get("PYTHONPATH"))
                                        if p)
    env.update({
        context.PARAMS_VAR: str(paths["params"]),
        context.RUN_ID_VAR: job["run_id"],
        context.NODE_VAR: job["node"],
        context.ATTEMPT_VAR: str(job["attempt"]),
    })
    for port, path in paths["inputs"].items():
        env[context.port_variable(context.INPUT_PREFIX, port)] = str(path)
    for port, path in paths["outputs"].items():
        env[context.port_variable(context.OUTPUT_PREFIX, port)] = str(path)
    return env


def metrics_pipe_env(write_fd: int) -> dict[str, str]:
    """How runner.context knows the metrics pipe is its own and not an fd reused since."""
    return {context.METRICS_INODE_VAR: str(os.fstat(write_fd).st_ino)}
