"""Run one StepJob in a subprocess and say truthfully how it ended.

The step gets a fresh working directory, its code, its inputs (linked from a local datastore),
empty output folders, its parameters in a JSON file and an environment built from an allowlist
(never the worker's own: S6). It runs in its own session, so a timeout or cancel reaches the
whole process group, grandchildren included (R12). Its stdout, stderr and metrics stream to a
Sink with declared secrets masked (S7). Outputs are published only when it exits 0 (R13).
A supervisor leads that group (runner.step_launch) and stops it when the worker's lease on
contact with the server ends, or the worker dies, even while this process cannot run (R16).

Working directory layout:

    <workdir_root>/<run_id>/<node>-a<attempt>-<random>/
        code/          the step's files; the current directory of the process
        inputs/<port>  each input (a symbolic link on a local datastore)
        outputs/<port> an empty folder per output, published after success
        params.json    the resolved parameters
        tmp/           TMPDIR
        .pipelines/lib the step-side `runner` package (context.py alone) for PYTHONPATH

The attempt is claimed (the `claim` callback) before any step code runs. The interpreter's
start-up is most of a short step's cost, so a Python step is forked, once the claim has
succeeded, from a template interpreter this process keeps (runner.step_launch); the first one
starts while the claim is in flight. Any other command, and a Python step whose own
interpreter options or variables must apply at start-up (PYTHON*, LD_*, locale), starts as
itself after the claim.
"""

from __future__ import annotations

import array
import contextlib
import errno
import json
import logging
import marshal
import math
import os
import re
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal, Protocol

from runner import context, step_launch
from runner.datastore import Datastore, DatastoreError, remove_tree
from runner.messages import MAX_LOG_LINE_CHARS, ArtifactRef, StepJob

logger = logging.getLogger(__name__)

KILL_GRACE_S = step_launch.KILL_GRACE_S  # between SIGTERM and SIGKILL of the step's group
POLL_S = 0.1  # how often should_stop and the timeout are checked
READER_JOIN_S = 5.0  # how long to wait for output still in the pipes after the step ended
STDERR_TAIL_LINES = 200  # kept to find the Python traceback
TRACEBACK_TAIL_LINES = 50  # reported when stderr holds no traceback
KEEP_WORKDIR_VAR = "PIPELINES_KEEP_WORKDIR"
ALLOWED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")  # all that the step inherits from the worker
NO_HOME = "/nonexistent"  # an interpreter's HOME until its step launches: no user site-packages

_READ_LIMIT = 64 * 1024  # bytes per read of a line; more than MAX_LOG_LINE_CHARS needs
_CUT_MARK = " [line cut]"
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


class Sink(Protocol):
    """Where streamed output goes; the worker's reporter implements it.

    The executor calls it from one thread at a time, so it need not be thread-safe; it should
    buffer and return quickly, since a slow sink slows the step's pipes and the final flush.
    """

    def log(self, stream: str, text: str, time: float) -> None: ...

    def metric(self, key: str, value: float, step: int | None, time: float) -> None: ...


class SetupError(Exception):
    """The step could not be prepared or started; the text is meant for the step's owner."""


class _PublishError(Exception):
    """An output of a successful step could not be published."""


def _never() -> str | None:
    return None


def _granted() -> bool:
    return True


def _ignore(pid: int) -> None:
    return None


def _forever() -> float:
    return math.inf


def execute(job: StepJob, sink: Sink, *, workdir_root: Path,
            claim: Callable[[], bool] = _granted,
            should_stop: Callable[[], str | None] = _never,
            on_start: Callable[[int], None] = _ignore,
            contact_until: Callable[[], float] = _forever,
            dispose: Callable[[Path], None] | None = None) -> StepResult | None:
    """Run one step to its end and return how it ended; never raises for the step's faults.

    `claim` is called once, before any step code runs; when it answers False the step does
    not run and None is returned. A step that could not be prepared is claimed too, so that
    its failure is reported. `should_stop` is polled about every POLL_S seconds:
    "lost_contact" stops the step with that reason, any other non-None value cancels it.
    `contact_until` is polled as often: the time (time.monotonic) until which the step may
    run without more contact with the server; the step's supervisor stops it after that
    whether or not this process can still run. `on_start` receives the pid of the step's
    supervisor, its process group's. The working directory is removed before returning,
    or handed to `dispose` to remove later (the worker does so once it has reported the end:
    it is not on the step's path).
    """
    mask = Masker((job.get("secrets") or {}).values())
    stream = _StreamSink(sink, mask)
    claim_once = _Claim(claim)
    workdir: Path | None = None
    try:
        workdir = _make_workdir(Path(workdir_root).absolute(), job)
        prepared = _prepare(job, workdir)
        return _run(job, prepared, stream, claim_once,
                    _Watch(should_stop, contact_until), on_start)
    except SetupError as exc:
        if not claim_once():
            return None
        stream.system(f"could not run the step: {exc}")
        return _failed("error", mask(str(exc)))
    except Exception as exc:  # a bug here must still end in a final state
        logger.exception("executor failed on step %s/%s", job.get("run_id"), job.get("node"))
        if not claim_once():
            return None
        return _failed("error", mask(f"{type(exc).__name__}: {exc}"))
    finally:
        stream.close()
        if workdir is not None and os.environ.get(KEEP_WORKDIR_VAR) != "1":
            (dispose or remove_workdir)(workdir)


class _Claim:
    """Calls the claim callback at most once and remembers its answer."""

    def __init__(self, claim: Callable[[], bool]) -> None:
        self._claim = claim
        self.answer: bool | None = None

    def __call__(self) -> bool:
        if self.answer is None:
            self.answer = bool(self._claim())
        return self.answer


# --- Preparing the working directory -----------------------------------------------------


@dataclass
class _Prepared:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    outputs: dict[str, Path]
    store: Datastore
    launchable: bool  # can be forked from a template interpreter (runner.step_launch)


def _make_workdir(root: Path, job: StepJob) -> Path:
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


def _prepare(job: StepJob, workdir: Path) -> _Prepared:
    _check_ports(job["inputs"])
    _check_ports(job["outputs"])
    store = _open_store(job["datastore_url"])
    code_dir = workdir / "code"
    _write_code(job["code"], code_dir)
    inputs = _materialize_inputs(job["inputs"], workdir / "inputs")
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
    return _Prepared(argv=argv, cwd=code_dir, env=env, outputs=outputs, store=store,
                     launchable=_launchable(job))


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


def _materialize_inputs(refs: dict[str, ArtifactRef], folder: Path) -> dict[str, Path]:
    folder.mkdir()
    paths = {}
    for port, ref in refs.items():
        dest = folder / port
        try:
            Datastore.containing(ref).materialize(ref, dest)
        except (DatastoreError, OSError) as exc:
            raise SetupError(f"cannot fetch input {port!r}: {exc}") from exc
        paths[port] = dest
    return paths


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


def _launchable(job: StepJob) -> bool:
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


def _shared_environment(program: str) -> dict[str, str]:
    """What every step's environment starts from; an interpreter started ahead has it."""
    env = {name: os.environ[name] for name in ALLOWED_ENV if name in os.environ}
    # The interpreter's folder first, as an activated virtualenv would have it.
    folder = os.path.dirname(program) if os.path.isabs(program) else ""
    env["PATH"] = os.pathsep.join(p for p in (folder, env.get("PATH", os.defpath)) if p)
    env.update(HOME=NO_HOME, PYTHONUNBUFFERED="1")
    return env


def _environment(job: StepJob, workdir: Path, program: str,
                 paths: dict[str, Any]) -> dict[str, str]:
    env = _shared_environment(program)
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


# --- Running ------------------------------------------------------------------------------


@dataclass
class _Watch:
    """What the executor asks while the step runs: whether to stop it, and until when the
    worker holds a lease on contact with the server."""

    should_stop: Callable[[], str | None]
    contact_until: Callable[[], float]


def _run(job: StepJob, prepared: _Prepared, stream: _StreamSink, claim: _Claim,
         watch: _Watch, on_start: Callable[[int], None]) -> StepResult | None:
    template = _take_template(prepared)  # if none is kept, one starts during the claim
    claimed = False
    try:
        claimed = claim()
    finally:
        if template is not None and not claimed:
            _templates.keep(template)  # it forked nothing; the next step can have it
    if not claimed:
        return None
    with _Lease(watch.contact_until) as lease:
        return _run_claimed(job, prepared, stream, template, watch.should_stop, lease,
                            on_start)


def _run_claimed(job: StepJob, prepared: _Prepared, stream: _StreamSink,
                 template: _Template | None, should_stop: Callable[[], str | None],
                 lease: _Lease, on_start: Callable[[int], None]) -> StepResult:
    # A template that is gone forked nothing that will run: the claim holds for a fresh start.
    launched = template.launch(prepared, lease.read_fd) if template is not None else None
    proc, metrics_fd = launched or _start(prepared, lease.read_fd)
    lease.handed_over()
    reader: threading.Thread | None = None
    try:
        reader = _start_reader(proc, metrics_fd, stream)
        on_start(proc.pid)
        stop_reason = _supervise(proc, job["timeout_s"], should_stop, lease, stream)
    finally:
        # Whatever happened, no process of the step's group outlives it; and only then does
        # the lease pipe close, which would tell its supervisor that the worker died.
        _signal_group(proc.pid, signal.SIGKILL)
        _wait_killed(proc)
        if launched is not None and template is not None:
            if template.reap():
                _templates.keep(template)
            else:
                template.stop()
        if reader is not None:
            _join_reader(reader, stream)
    if proc.returncode is None:
        return _failed("error", "the interpreter the step was forked from ended during the "
                       "step, so its exit status is unknown")
    return _result(job, prepared, proc.returncode, stop_reason, stream)


def _take_template(prepared: _Prepared) -> _Template | None:
    if not prepared.launchable:
        return None
    try:
        return _templates.take(prepared.argv[0])
    except (OSError, ValueError):  # the fresh start after the claim says why, to the owner
        logger.warning("could not start a template interpreter", exc_info=True)
        return None


Process = "subprocess.Popen[bytes] | _Forked"  # a step started as itself, or forked
Started = tuple[Process, int]


def _start(prepared: _Prepared, lease_fd: int) -> Started:
    """Start the step's command as it is, under a supervisor in a session of its own
    (runner.step_launch), with a metrics pipe; returns the supervisor's process and our end of
    the metrics pipe."""
    read_fd, write_fd = os.pipe()
    (launch_r, launch_w), (error_r, error_w) = os.pipe(), os.pipe()
    env = {**prepared.env, **_metrics_env(write_fd), context.METRICS_FD_VAR: str(write_fd)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", step_launch.__file__, step_launch.COMMAND,
             str(lease_fd), str(launch_r), str(error_w), str(os.getpid())],
            cwd="/", env={}, start_new_session=True,
            pass_fds=(write_fd, lease_fd, launch_r, error_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except BaseException as exc:
        _close(read_fd, launch_w, error_r)
        if isinstance(exc, (OSError, ValueError)):
            raise SetupError(f"cannot start the step's supervisor: {exc}") from exc
        raise
    finally:
        # The step holds its own copies; EOF comes when it (and its kin) exit.
        _close(write_fd, launch_r, error_w)
    _write_launch(launch_w, {"cwd": str(prepared.cwd), "args": prepared.argv, "env": env})
    _raise_if_not_started(proc, error_r, prepared.argv[0], read_fd)
    return proc, read_fd


def _write_launch(fd: int, launch: dict[str, Any]) -> None:
    try:
        with open(fd, "wb") as pipe:
            pipe.write(step_launch.framed(marshal.dumps(launch, 4)))
    except OSError:
        pass  # the step is gone already; its supervisor tells how it ended


def _raise_if_not_started(proc: subprocess.Popen[bytes], error_fd: int, program: str,
                          metrics_fd: int) -> None:
    """Wait until the step has executed its command; SetupError if it could not."""
    with open(error_fd, "rb") as errors:
        reported = errors.read()
    if not reported:
        return
    proc.wait()
    _close(metrics_fd)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()
    number = int(reported)
    if number == errno.ENOENT:
        raise SetupError(f"command not found: {program}")
    raise SetupError(f"cannot start {program}: {OSError(number, os.strerror(number), program)}")


def _metrics_env(write_fd: int) -> dict[str, str]:
    """How runner.context knows the metrics pipe is its own and not an fd reused since."""
    return {context.METRICS_INODE_VAR: str(os.fstat(write_fd).st_ino)}


class _Forked:
    """A step forked by a template (runner.step_launch): what the executor uses of a Popen.
    `returncode` stays None if the template ends before it can tell the step's exit status."""

    def __init__(self, pid: int, stdout: IO[bytes], stderr: IO[bytes],
                 template: _Template) -> None:
        self.pid, self.stdout, self.stderr, self.template = pid, stdout, stderr, template
        self.returncode: int | None = None
        self.exited = threading.Event()
        threading.Thread(target=self._wait_for_status, daemon=True,
                         name=f"step-status-{pid}").start()

    def _wait_for_status(self) -> None:
        self.returncode = self.template.receive_int()
        self.exited.set()

    def wait(self, timeout: float | None = None) -> int | None:
        if not self.exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"step {self.pid}", timeout or 0)
        return self.returncode


def _wait_killed(proc: Process) -> None:
    """Wait for a step whose group was sent SIGKILL. A template that does not tell its exit
    status by then (a step stopped it with SIGSTOP, say) is killed: the step is gone anyway."""
    if isinstance(proc, _Forked):
        try:
            proc.wait(KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.template.kill()
    proc.wait()


@dataclass
class _Template:
    """A Python interpreter kept to fork steps from (runner.step_launch)."""

    python: str  # the executable it was started from
    proc: subprocess.Popen[bytes]
    sock: socket.socket  # our end of the socket it listens on
    binary: tuple[int, ...] | None  # that executable's identity, to see it replaced
    folders: list[tuple[str, int]] | None = None  # its sys.path folders' mtimes, once known

    @classmethod
    def start(cls, python: str) -> _Template:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(
                [python, step_launch.__file__, str(theirs.fileno())], cwd="/",
                env=_shared_environment(python), start_new_session=True,
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(python, proc, ours, _identity(python))

    def launch(self, prepared: _Prepared, lease_fd: int) -> Started | None:
        """Fork the step; None if the template is gone, and then nothing of the step runs."""
        if self.folders is None:
            folders = self._receive_bytes()
            if folders is None:
                self.stop()
                return None
            self.folders = marshal.loads(folders)
        (out_r, out_w), (err_r, err_w), (metrics_r, metrics_w), (launch_r, launch_w) = (
            os.pipe() for _ in range(step_launch.FDS - 1))  # and the lease pipe, given
        launch = marshal.dumps({
            "cwd": str(prepared.cwd), "args": prepared.argv[1:],
            "env": {**prepared.env, **_metrics_env(metrics_w)},
            "metrics_fd_var": context.METRICS_FD_VAR}, 4)
        passed = array.array("i", [out_w, err_w, metrics_w, launch_r, lease_fd])
        try:
            self.sock.sendmsg([step_launch.FORK],
                              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, passed)])
            pid = self.receive_int()
        except OSError:
            pid = None
        finally:
            _close(out_w, err_w, metrics_w, launch_r)  # a child has its own copies
        if pid is None or pid <= 0:  # a child forked all the same finds its launch pipe empty
            _close(launch_w, out_r, err_r, metrics_r)
            self.stop()
            return None
        try:
            with open(launch_w, "wb") as pipe:  # to the child alone: the template never sees it
                pipe.write(step_launch.framed(launch))
        except OSError:
            pass  # the child is gone already; the template tells how it ended
        return _Forked(pid, open(out_r, "rb"), open(err_r, "rb"), self), metrics_r

    def receive_int(self) -> int | None:
        """The template's next number; None if it is gone."""
        data = self._receive_exactly(step_launch.INT_BYTES)
        return None if data is None else int.from_bytes(data, "big", signed=True)

    def _receive_bytes(self) -> bytes | None:
        size = self.receive_int()
        return None if size is None else self._receive_exactly(size)

    def _receive_exactly(self, size: int) -> bytes | None:
        try:
            return step_launch.read_exactly(self.sock.fileno(), size)
        except (OSError, EOFError):  # a closed socket's fileno() is -1: EBADF
            return None

    def reap(self) -> bool:
        """Let the template reap its step, whose group has been killed; False if it is gone."""
        try:
            self.sock.sendall(step_launch.REAP)
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """End a template no step will use: closing its socket makes it exit."""
        self.sock.close()
        threading.Thread(target=self.proc.wait, daemon=True).start()  # reaped when it exits

    def kill(self) -> None:
        """End a template that does not answer; what waits on its socket then sees it gone."""
        self.proc.kill()

    def usable(self) -> bool:
        """Alive, and started from what a fresh interpreter would start from today."""
        if self.proc.poll() is not None or self.binary != _identity(self.python):
            return False
        return self.folders is None or all(_mtime(folder) == mtime
                                           for folder, mtime in self.folders)


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _identity(path: str) -> tuple[int, ...] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino, found.st_mtime_ns


class _Templates:
    """The template this process forks its next Python step from, started from the executable
    of the last one (a worker's target names one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: _Template | None = None

    def take(self, python: str) -> _Template:
        with self._lock:
            held, self._kept = self._kept, None
        if held is not None and held.python == python and held.usable():
            return held
        if held is not None:
            held.stop()
        return _Template.start(python)

    def keep(self, template: _Template) -> None:
        replaced = template
        if template.usable():
            with self._lock:
                replaced, self._kept = self._kept, template
        if replaced is not None:
            replaced.stop()


_templates = _Templates()


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


def _supervise(proc: Process, timeout_s: float, should_stop: Callable[[], str | None],
               lease: _Lease, stream: _StreamSink) -> Reason | None:
    """Wait for the step, renewing its lease; stop it on timeout or request and return why,
    else None."""
    deadline = time.monotonic() + timeout_s
    with _exit_waiter(proc) as exited_within:
        while not exited_within(POLL_S):
            lease.renew()
            reason = _requested_stop(should_stop)
            if reason is None and time.monotonic() >= deadline:
                reason = "timeout"
            if reason is not None:
                stream.system(f"{_stop_message(reason, timeout_s)}: stopping the step")
                _terminate(proc)
                return reason
    return None


@contextlib.contextmanager
def _exit_waiter(proc: Process) -> Iterator[Callable[[float], bool]]:
    """A wait of at most the given seconds that returns whether the step exited, the moment it
    does: Popen.wait(timeout) polls with sleeps of up to 50 ms, most of a short step's time."""
    if isinstance(proc, _Forked):
        yield proc.exited.wait
        return
    try:
        pidfd = os.pidfd_open(proc.pid)  # readable once the process exits
    except (AttributeError, OSError):  # before Linux 5.3, or refused by a seccomp profile
        exited = threading.Event()
        threading.Thread(target=lambda: (proc.wait(), exited.set()), name="step-wait",
                         daemon=True).start()
        yield exited.wait
        return
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    try:
        yield lambda timeout: bool(poller.poll(timeout * 1000)) and proc.poll() is not None
    finally:
        os.close(pidfd)


class _Lease:
    """The pipe the step's supervisor reads the worker's lease from (runner.step_launch). Its
    read end goes to the supervisor; closing the write end, which only this process holds,
    tells the supervisor that the worker is gone."""

    def __init__(self, contact_until: Callable[[], float]) -> None:
        self._contact_until = contact_until
        self.read_fd: int | None
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._sent: float | None = None
        self.renew()  # read before anything else: the launch follows it

    def __enter__(self) -> _Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handed_over()
        os.close(self._write_fd)

    def renew(self) -> None:
        try:
            until = float(self._contact_until())
        except Exception:  # a broken callback renews nothing: the lease runs out
            logger.exception("contact_until failed; the step's lease is not renewed")
            return
        if until == self._sent:
            return
        try:
            os.write(self._write_fd, struct.pack("!d", until))
            self._sent = until
        except BlockingIOError:
            pass  # a supervisor that reads nothing was stopped with its group; it ends with it
        except BrokenPipeError:
            pass  # the supervisor has ended, and its step with it

    def handed_over(self) -> None:
        """Our copy of the read end is no longer needed: the supervisor has its own."""
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None


def _requested_stop(should_stop: Callable[[], str | None]) -> Reason | None:
    try:
        wanted = should_stop()
    except Exception:  # a broken callback must not leave the step unsupervised
        logger.exception("should_stop failed; the step keeps running")
        return None
    if wanted is None:
        return None
    return "lost_contact" if wanted == "lost_contact" else "canceled"


def _terminate(proc: Process) -> None:
    """SIGTERM the step's process group, then SIGKILL it after the grace period."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    _wait_killed(proc)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # The group is gone already.


# --- Streaming output ---------------------------------------------------------------------


class Masker:
    """Replaces every declared secret value with "***"."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values: set[str] = set()
        for secret in secrets:
            values.add(secret)
            # Output is read line by line, so each line of a multi-line secret is masked too.
            values.update(line.strip() for line in secret.splitlines())
        ordered = sorted((v for v in values if v), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub("***", text) if self._pattern else text


class _StreamSink:
    """Masks and cuts lines, serializes calls into the Sink, and keeps the tail of stderr."""

    def __init__(self, sink: Sink, mask: Masker) -> None:
        self._sink, self._mask = sink, mask
        self._lock = threading.Lock()
        self._open = True
        self._warned = False
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def log(self, stream: str, text: str) -> None:
        line = _cut(self._mask(text))
        if stream == "stderr":
            self.stderr_tail.append(line)
        self._deliver(self._sink.log, stream, line, time.time())

    def system(self, text: str) -> None:
        self.log("system", text)

    def metric_line(self, text: str) -> None:
        point = _parse_metric(text)
        if point is None:
            self.system(f"ignored a malformed metric line: {text[:200]}")
            return
        key, value, step, when = point
        self._deliver(self._sink.metric, self._mask(key), value, step, when)

    def close(self) -> None:
        with self._lock:
            self._open = False

    def _deliver(self, method: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if not self._open:
                return  # The step has been reported; late output is dropped.
            try:
                method(*args)
            except Exception:  # the pipes must keep draining or the step blocks
                if not self._warned:
                    logger.exception("the sink failed; dropping step output")
                    self._warned = True


def _cut(line: str) -> str:
    if len(line) <= MAX_LOG_LINE_CHARS:
        return line
    return line[: MAX_LOG_LINE_CHARS - len(_CUT_MARK)] + _CUT_MARK


def _parse_metric(text: str) -> tuple[str, float, int | None, float] | None:
    """A metric line as written by context.log_metric, or None when it is malformed."""
    try:
        data = json.loads(text)
        key, value, step = data["key"], data["value"], data.get("step")
        if not isinstance(key, str) or not key or len(key) > context.MAX_METRIC_KEY_CHARS:
            return None
        if not _is_finite_number(value):
            return None
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            return None
        when = data.get("time")
        return key, float(value), step, float(when) if _is_finite_number(when) else time.time()
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
        return None


def _is_finite_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _start_reader(proc: Process, metrics_fd: int, stream: _StreamSink) -> threading.Thread:
    """One thread hands on the lines of the step's stdout, stderr and metrics pipes until
    each is at its end (a thread each cost more to start than a short step's reading)."""
    assert proc.stdout is not None and proc.stderr is not None
    sources: list[tuple[IO[bytes], Callable[[str], None]]] = [
        (proc.stdout, lambda text: stream.log("stdout", text)),
        (proc.stderr, lambda text: stream.log("stderr", text)),
        (os.fdopen(metrics_fd, "rb"), stream.metric_line),
    ]
    thread = threading.Thread(target=_pump, args=(sources,), daemon=True,
                              name=f"step-reader-{proc.pid}")
    thread.start()
    return thread


def _pump(sources: list[tuple[IO[bytes], Callable[[str], None]]]) -> None:
    with contextlib.ExitStack() as opened, selectors.DefaultSelector() as selector:
        for source, handle in sources:
            opened.enter_context(source)
            selector.register(source, selectors.EVENT_READ, _Lines(handle))
        while selector.get_map():
            for key, _ in selector.select():
                chunk = os.read(key.fd, _READ_LIMIT)
                if chunk:
                    key.data.feed(chunk)
                else:
                    key.data.end()
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # now, even while another pipe stays open


class _Lines:
    """Cuts a stream's bytes into decoded lines without their line ending, for `handle`; of a
    line longer than _READ_LIMIT bytes only the beginning is handed on."""

    def __init__(self, handle: Callable[[str], None]) -> None:
        self.handle = handle
        self.pending = b""
        self.skipping = False  # the rest of a line whose beginning was handed on

    def feed(self, chunk: bytes) -> None:
        data, start = self.pending + chunk, 0
        while True:
            end = data.find(b"\n", start, start + _READ_LIMIT)
            if end >= 0:
                stop = end + 1
            elif len(data) - start >= _READ_LIMIT:
                stop = start + _READ_LIMIT
            else:
                break
            self._piece(data[start:stop])
            start = stop
        self.pending = data[start:]

    def end(self) -> None:
        if self.pending:
            self._piece(self.pending)
            self.pending = b""

    def _piece(self, piece: bytes) -> None:
        if not self.skipping:
            text = piece.decode("utf-8", errors="replace")
            try:
                self.handle(text[:-1].removesuffix("\r") if text.endswith("\n") else text)
            except Exception:  # one line must not stop the reading of the step's pipes
                logger.exception("could not hand on a line of the step's output")
        self.skipping = not piece.endswith(b"\n")


def _join_reader(reader: threading.Thread, stream: _StreamSink) -> None:
    reader.join(READER_JOIN_S)
    if reader.is_alive():
        stream.system("stopped reading the step's output: a process that left the step's "
                      "process group still holds it open")


# --- The result ---------------------------------------------------------------------------


def _result(job: StepJob, prepared: _Prepared, returncode: int, stop_reason: Reason | None,
            stream: _StreamSink) -> StepResult:
    traceback, summary = find_traceback(list(stream.stderr_tail))
    exit_code = returncode if returncode >= 0 else None
    if stop_reason is not None:
        message = _stop_message(stop_reason, job["timeout_s"])
        return _failed(stop_reason, message, exit_code, traceback)
    if returncode < 0:
        return _failed("signal", f"killed by signal {-returncode}", None, traceback)
    if returncode > 0:
        if summary is None:  # no traceback: a script's own last word on stderr says why
            last = next((line for line in reversed(stream.stderr_tail) if line.strip()), None)
            summary = last[:_MAX_SUMMARY_CHARS] if last else None
        message = f"exit code {returncode}" + (f": {summary}" if summary else "")
        return _failed("exit", message, returncode, traceback)
    try:
        outputs = _publish_outputs(prepared, stream)
    except _PublishError as exc:
        stream.system(str(exc))
        return _failed("error", str(exc), 0, "")
    return StepResult("succeeded", None, "succeeded", 0, "", outputs)


def _failed(reason: Reason, message: str, exit_code: int | None = None,
            traceback: str = "") -> StepResult:
    return StepResult("failed", reason, message, exit_code, traceback, {})


def _stop_message(reason: str, timeout_s: float) -> str:
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


def _publish_outputs(prepared: _Prepared, stream: _StreamSink) -> dict[str, ArtifactRef]:
    refs = {}
    for port, path in prepared.outputs.items():
        if not os.path.lexists(path):
            path.mkdir(parents=True)  # a removed output folder is an empty output
        try:
            refs[port] = prepared.store.publish(path)
        except (DatastoreError, OSError) as exc:
            raise _PublishError(f"cannot publish output {port!r}: {exc}") from exc
        stream.system(f"output {port!r}: {refs[port]['digest']} ({refs[port]['size']} bytes)")
    return refs
