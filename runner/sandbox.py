"""Confine a step before any of its code runs (docs/reliability.md S11).

Two layers, each used where the platform offers it (runner.isolation chooses): the step runs
as an unprivileged user of its own, and Linux Landlock restricts it to its working folder
(read-write) and the folders it needs to run (read-only): the interpreter's, the system's.
Landlock rules allow a whole hierarchy, so the caller names the folders themselves, never one
above the server's state.

A confinement is a plain dict, as it travels in a step's launch (runner.step_launch):
{"uid": int | None, "gid": int | None, "landlock": bool, "read_only": [path, ...],
"read_write": [path, ...]}.

Standard library only: runner.step_launch loads this file into the template interpreter.
"""

import ctypes
import os

# Syscall numbers: the same on x86_64 and aarch64 (the generic table).
SYSCALLS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
ABI_1_ACCESS = (1 << 13) - 1  # execute ... make_sym: every right of the first version
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
READ_ONLY = EXECUTE | READ_FILE | READ_DIR
# ABI 6: no signal to, and no abstract Unix socket of, a process outside the step's domain
# (the worker, the server under the same user).
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
FILE_ACCESS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE  # what a rule on a file may allow


class ConfinementError(OSError):
    """The step could not be confined: it must not run."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _numbers():
    return SYSCALLS.get(os.uname().machine)


def abi_version():
    """The kernel's Landlock ABI version; 0 where Landlock is missing or disabled."""
    numbers = _numbers()
    if numbers is None:
        return 0
    found = _syscall(ctypes.c_long(numbers[0]), None, ctypes.c_size_t(0),
                     ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(found, 0)


def handled_access(abi):
    """Every file-system right this ABI knows, less device ioctls: a GPU step needs those."""
    access = ABI_1_ACCESS
    if abi >= 2:
        access |= REFER
    if abi >= 3:
        access |= TRUNCATE
    return access


def _check(result, what):
    if result < 0:
        number = ctypes.get_errno()
        raise ConfinementError(number, f"{what}: {os.strerror(number)}")
    return result


def ruleset(read_only, read_write):
    """A Landlock ruleset fd that allows `read_only` to be read and executed, `read_write`
    anything (both hierarchies); paths that do not exist are left out."""
    abi = abi_version()
    if abi < 1:
        raise ConfinementError(0, "Landlock is not available in this kernel")
    handled = handled_access(abi)
    create, add_rule, _ = _numbers()
    attr = _RulesetAttr(handled, 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = ctypes.sizeof(attr) if abi >= 6 else ctypes.sizeof(ctypes.c_uint64)  # older: fs only
    fd = _check(_syscall(ctypes.c_long(create), ctypes.byref(attr), ctypes.c_size_t(size),
                         ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        for paths, access in ((read_only, READ_ONLY), (read_write, handled)):
            for path in paths:
                _allow(fd, add_rule, path, access)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _allow(fd, add_rule, path, access):
    try:
        target = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not os.path.isdir(path):
            access &= FILE_ACCESS
        rule = _PathBeneath(access, target)
        _check(_syscall(ctypes.c_long(add_rule), ctypes.c_long(fd),
                        ctypes.c_long(RULE_PATH_BENEATH), ctypes.byref(rule),
                        ctypes.c_uint32(0)), f"landlock_add_rule {path}")
    finally:
        os.close(target)


def enforce(fd):
    """Restrict this process, and all it starts, to the ruleset; for good."""
    try:
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check(_syscall(ctypes.c_long(_numbers()[2]), ctypes.c_long(fd), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(fd)


def become(uid, gid):
    """Drop to the step's user: no supplementary groups, its group, its user."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def confine(confinement):
    """Apply a confinement (see the module's docstring) to this process; ConfinementError or
    OSError if any part of it fails, and then the step must not run. The ruleset is built
    before the user changes: opening the folders is the worker's right, not the step's."""
    if not confinement:
        return
    fd = None
    if confinement.get("landlock"):
        fd = ruleset(confinement["read_only"], confinement["read_write"])
    try:
        if confinement.get("uid") is not None:
            become(confinement["uid"], confinement["gid"])
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    if fd is not None:
        enforce(fd)
