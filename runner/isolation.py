"""How far this worker can keep its steps from its own state and the server's (S11).

Levels, the first the platform offers (layered where both apply):

    step-user  the worker runs as root: steps run as an unprivileged user (PIPELINES_STEP_USER,
               else `pipelines-step`, created if missing) in folders that user owns, with
               var/ closed to it (0700); Landlock on top where the kernel has it
    landlock   steps run as the worker's user, restricted by Linux Landlock to their working
               folder and read-only interpreter and system folders
    none       steps can read and write whatever the worker's user can: a loud warning

PIPELINES_STEP_ISOLATION=landlock skips the step user, =none turns confinement off (tests,
or a kernel that refuses it). The step user is used only once it has started the interpreter
and reached the work root: a folder on either path it cannot traverse is named in `notes`.
"""

from __future__ import annotations

import grp
import hashlib
import json
import logging
import os
import pwd
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from runner import sandbox

log = logging.getLogger(__name__)

ISOLATION_VAR = "PIPELINES_STEP_ISOLATION"
STEP_USER_VAR = "PIPELINES_STEP_USER"
DEFAULT_STEP_USER = "pipelines-step"
FORCED = ("auto", "landlock", "none")
PROBE_TIMEOUT_S = 30
# Read-only for every confined step: what a program needs from the system, never its state.
SYSTEM_READ_ONLY = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt",
                    "/proc", "/sys", "/dev/urandom", "/dev/random")
# Devices a program writes to, and shared memory (multiprocessing, data loaders).
SYSTEM_READ_WRITE = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/shm")
RUNNER_DIR = str(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class Isolation:
    level: str  # step-user, landlock or none
    landlock_abi: int = 0
    user: str | None = None
    uid: int | None = None
    gid: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    protected: tuple[str, ...] = ()  # folders no Landlock rule may enclose: var/, the work root

    @property
    def landlock(self) -> bool:
        return self.landlock_abi > 0

    def describe(self) -> str:
        if self.level == "step-user":
            layers = f"user {self.user}" + (f" + Landlock ABI {self.landlock_abi}"
                                             if self.landlock else "")
            text = f"steps are isolated: {layers}"
        elif self.level == "landlock":
            text = f"steps are isolated: Landlock ABI {self.landlock_abi}, as the worker's user"
        else:
            text = ("WARNING: steps are NOT isolated from the worker's user: a step can read "
                    "and write the worker's and the server's files")
        return "; ".join((text, *self.notes))

    def report(self) -> dict[str, Any]:
        """As the worker announces it (resources.isolation)."""
        return {"level": self.level, "landlock_abi": self.landlock_abi, "user": self.user,
                "description": self.describe()}


def forced_level() -> str:
    value = os.environ.get(ISOLATION_VAR) or "auto"
    if value not in FORCED:
        raise ValueError(f"{ISOLATION_VAR}={value!r}: it must be one of {', '.join(FORCED)}")
    return value


def detect(python: str, work_root: Path, var_dir: Path) -> Isolation:
    """The level this worker runs its steps at, checked for real (see the module)."""
    forced = forced_level()
    if forced == "none":
        return Isolation("none", notes=(f"{ISOLATION_VAR}=none",))
    protected = (str(var_dir), str(work_root))
    abi = sandbox.abi_version()
    notes = [] if abi else ["Landlock is not available in this kernel"]
    if forced == "auto" and os.geteuid() == 0:
        user, why = _usable_step_user(python, work_root)
        if user is not None:
            close_var_dir(var_dir)
            return Isolation("step-user", abi, user.pw_name, user.pw_uid, user.pw_gid,
                             tuple(notes), protected)
        notes.append(f"no step user: {why}")
    elif forced == "auto":
        notes.append("no step user: the worker does not run as root")
    return Isolation("landlock" if abi else "none", abi, notes=tuple(notes), protected=protected)


def _usable_step_user(python: str, work_root: Path) -> tuple[pwd.struct_passwd | None, str]:
    try:
        user = _step_user()
    except (KeyError, OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    if user.pw_uid == 0:
        return None, f"the step user {user.pw_name} is root"
    why = _cannot_run(python, work_root, user)
    return (None, why) if why else (user, "")


def _step_user() -> pwd.struct_passwd:
    name = os.environ.get(STEP_USER_VAR) or DEFAULT_STEP_USER
    try:
        return pwd.getpwnam(name)
    except KeyError:
        if os.environ.get(STEP_USER_VAR):
            raise KeyError(f"{STEP_USER_VAR}={name}: no such user") from None
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True, timeout=PROBE_TIMEOUT_S)
    return pwd.getpwnam(name)


def _cannot_run(python: str, work_root: Path, user: pwd.struct_passwd) -> str:
    """Why `user` cannot start `python` and reach the work root, or "" if it can. The folders
    are checked first: a probe started in the work root would not tell (the child changes
    folder before it changes user)."""
    closed = (closed_folder(python, user) or closed_folder(os.path.realpath(python), user)
              or closed_folder(str(work_root), user))
    if closed:
        return (f"user {user.pw_name} cannot reach {closed}: make it traversable "
                f"(chmod o+x {closed})")
    try:
        done = subprocess.run([python, "-c", "import os, sys; os.stat(sys.argv[1])",
                               str(work_root)], cwd="/", user=user.pw_uid, group=user.pw_gid,
                              extra_groups=[], env={"PATH": os.defpath}, capture_output=True,
                              timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"user {user.pw_name} cannot run {python}: {exc}"
    if done.returncode != 0:
        error = done.stderr.decode(errors="replace").strip()[-300:]
        return f"user {user.pw_name} cannot run {python} in {work_root}: {error}"
    return ""


def closed_folder(path: str, user: pwd.struct_passwd) -> str | None:
    """The first folder on the way to `path` that `user` may not traverse, if any."""
    groups = {user.pw_gid, *(g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem)}
    folder = Path(path) if os.path.isdir(path) else Path(path).parent
    for current in [*reversed(folder.parents), folder]:
        found = current.stat()
        if found.st_uid == user.pw_uid:
            bit = 0o100
        elif found.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not found.st_mode & bit:
            return str(current)
    return None


def default_work_root(var_dir: Path) -> Path:
    """Where a worker puts step folders unless PIPELINES_WORK_DIR says: var/work, or for a
    root worker, whose steps run as another user, a folder of its own in the temporary folder,
    since var/ stays closed to them."""
    if os.geteuid() != 0:
        return var_dir / "work"
    digest = hashlib.sha256(str(var_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"pipelines-steps-{digest}"


def prepare_work_root(root: Path) -> Path:
    """Create the work root, traversable but not listable by others (0711), and refuse one
    that another user could have put there."""
    root.mkdir(parents=True, exist_ok=True)
    found = root.lstat()
    if found.st_uid != os.geteuid() or not root.is_dir() or root.is_symlink():
        raise RuntimeError(f"the work root {root} is not a folder of this user's")
    root.chmod(0o711)
    return root


def close_var_dir(var_dir: Path) -> None:
    """var/ (database, keys, broker, datastore) for the server's user alone."""
    if var_dir.is_dir():
        var_dir.chmod(0o700)


@cache
def python_folders(python: str) -> tuple[str, ...]:
    """The folders `python` runs from: its prefixes and sys.path, as it reports them."""
    code = ("import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, "
            "sys.base_exec_prefix, *sys.path]))")
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, cwd="/",
                              env={"PATH": os.defpath}, timeout=PROBE_TIMEOUT_S, check=True)
        folders = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        folders = []
    real = os.path.realpath(python)
    return tuple(dict.fromkeys([os.path.dirname(real), os.path.dirname(os.path.abspath(python)),
                                *(f for f in folders if f and f != "/")]))


def _encloses(folder: str, paths: tuple[str, ...]) -> bool:
    return any(os.path.commonpath([folder, path]) == folder for path in paths)


def confinement(isolation: Isolation, workdir: Path, python: str,
                inputs: list[Path]) -> dict[str, Any] | None:
    """The confinement for one step (runner.sandbox), or None at level none."""
    if isolation.level == "none":
        return None
    protected = tuple(os.path.realpath(p) for p in (*isolation.protected, workdir.parent.parent))
    readable = [*SYSTEM_READ_ONLY, RUNNER_DIR, *python_folders(python or sys.executable),
                *(os.path.realpath(path) for path in inputs)]
    return {"uid": isolation.uid, "gid": isolation.gid, "landlock": isolation.landlock,
            "read_only": [f for f in readable if not _encloses(os.path.realpath(f), protected)],
            "read_write": [str(workdir), *SYSTEM_READ_WRITE]}


def hand_over(workdir: Path, isolation: Isolation) -> None:
    """Give the step's folder to the step user, 0700; its inputs stay the worker's, read-only."""
    if isolation.uid is None:
        return
    os.chown(workdir, isolation.uid, isolation.gid)
    workdir.chmod(0o700)
    for folder, dirs, files in os.walk(workdir):
        if Path(folder) == workdir / "inputs":
            dirs.clear()  # links into the datastore: their owner stays
        for name in [*dirs, *files]:
            os.lchown(os.path.join(folder, name), isolation.uid, isolation.gid)
