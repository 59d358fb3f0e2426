"""Run Python steps in children forked from an interpreter that started before them.

Starting an interpreter is most of a short step's cost, in time and CPU. So the executor
starts `python step_launch.py <fd>` once per worker process and keeps it: a template that
has run nothing but Python's own start-up. It first tells the executor the folders on its
sys.path with their modification times, so that a template whose virtualenv has changed since
(a package installed, a .pth file added) is replaced. Then, for each step, once its claim has
succeeded (R3), the executor sends on the socket <fd> the step's stdout, stderr and metrics
pipes and the read end of a launch pipe. The template forks and answers with the child's pid;
the executor then writes the launch to the child alone: the step's working directory,
environment (secrets included) and what follows the interpreter on its command line (a
script, `-m module` or `-c code`, and the arguments). So the template never holds any step's
data, which every later fork would copy, and a child whose pid never reached the executor
reads an empty pipe and runs nothing. The child leads a session of its own, as the step's
supervisor (below), and its own child becomes the step and runs it as `python <that>` would.
The template answers with the supervisor's exit status, which is the step's, and reaps it once
the executor says so, after the executor has killed the step's process group: the group's id
is never signalled once its leader is reaped. The socket closed ends the template.

The template started with the environment every step shares (runner.executor.prepare's
`shared_environment`); a step with variables of its own that act while a process starts
(PYTHON*, LD_*, locale: its `forkable`) is not run this way. What a forked step
shares with its template and so with the other steps of its worker process: the hash seed of
str and bytes, its parent process, and /proc/<pid>/cmdline and environ (os.environ is the
step's own). The template's own objects are frozen out of the collector's reach (gc.freeze:
gc.get_freeze_count() is not 0, gc.get_objects() leaves them out), so that neither the step's
collections nor its exit write to their pages: each write would copy a page, and an exit
cost 7 ms instead of 4.

Between the template and the step stands the step's supervisor: the child the template forks
starts a session, forks the step into it and stays as the leader of its process group. It
reads the worker's lease from a pipe: the time (time.monotonic) until which the step may run
without another word from the server. When the lease ends unrenewed it sends the group SIGTERM
(TERM_AFTER_LEASE_S later, so that a worker still running goes first), then SIGKILL
KILL_GRACE_S after that; when the worker's end of the pipe closes (the worker died) or its own
parent dies (PR_SET_PDEATHSIG) it sends SIGKILL at once. Being in the step's group, it also gets
what the step sends its own group (steps SIGHUP or SIGTERM it to stop their helpers): it ignores
SIGTERM, as the worker's stop of the group ends in the worker's SIGKILL (or, the worker gone, in
the closed pipe or the lease's end), and takes a SIGHUP for its parent's death only once its
parent is another. It runs in the step's session,
not the worker's, so a worker stopped with its whole process group (SIGSTOP, or a main process
hung in a C call) cannot hold it back, and it kills the whole group, grandchildren included,
where a parent-death signal alone reaches the step's own process only. When the step ends it
ends the same way (exit code, or the same signal), so the template tells the executor the
step's own exit status. A step that must start as its own command gets the same supervisor:
`python -I -S step_launch.py --command ...` started in a session of its own, which forks the
step and executes the command in it (supervise_command).

Before the step's own code runs, in the step's process (forked or about to execute its
command), the launch's confinement is applied: another user, Linux Landlock (runner.sandbox,
loaded once as this starts; docs/reliability.md S11). A step that cannot be confined ends
with NOT_CONFINED_EXIT and runs nothing.

Like context.py this runs in the step's interpreter: standard library only.
"""

# Only modules the interpreter has loaded before any script runs (and _socket, which the
# child forgets): one imported here would be the one the step gets, even where its own folder
# holds a module of that name. For the same reason no `from __future__` import: compile()
# would hand it on to the step's code.
import _frozen_importlib
import _frozen_importlib_external
import _signal
import _socket
import gc
import marshal
import os
import site
import sys

INT_BYTES = 8  # every number on the socket and the launch's length: signed, big-endian
FDS = 5  # the step's stdout, stderr and metrics pipes, the read ends of its launch and lease
FORK = b"f"  # the executor's word that comes with those
REAP = b"r"  # the executor's word that the step's process group may go
NOT_LAUNCHED_EXIT = 75  # a child that got no launch ran nothing
NOT_CONFINED_EXIT = 126  # a step whose confinement failed ran nothing
COMMAND = "--command"  # the argument that makes this the supervisor of a command (spawn path)
LEASE_BYTES = 8  # each lease on its pipe: a big-endian double, in time.monotonic() seconds

# A worker that is running stops its step itself at the end of its lease; its supervisor
# sends SIGTERM this much later, so that the step is not told twice, and SIGKILL KILL_GRACE_S
# after that. The server starts no other attempt of a lost step before STOPPED_WITHIN_S after
# the lease could have ended: the supervisor's SIGKILL, with time for it to be scheduled.
TERM_AFTER_LEASE_S = 0.5
KILL_GRACE_S = 3.0
STOPPED_WITHIN_S = 5.0
MAX_POLL_MS = 3_600_000  # a lease far off is looked at again hourly: poll() takes a C int

PR_SET_PDEATHSIG = 1
# Signals that would end the supervisor before its step: it outlives them to tell how the step
# ended. SIGTERM among them: a stop of the group, whoever began it, ends in a SIGKILL that the
# supervisor needs no word of (see the module's docstring).
SUPERVISOR_IGNORES = ("SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPIPE",
                      "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGXFSZ",
                      "SIGIO")

_prctl = None  # the C library's prctl, loaded at start on Linux (libc_prctl)
_sandbox = None  # runner/sandbox.py's functions, loaded at start on Linux (load_sandbox)


def serve(sock):
    """Tell the executor the site folders, then fork a step for each launch until the socket
    closes."""
    send_bytes(sock, marshal.dumps(site_folders(), 4))
    gc.freeze()  # see the module's docstring
    template = os.getpid()
    while True:
        fds = receive_fds(sock)
        if fds is None:
            return
        try:
            pid = os.fork()
        except OSError as exc:
            pid = -exc.errno
        if pid == 0:
            become_step(sock, fds, template)
            sys.exit()  # the step ended normally: exit as Python does after a script
        close_all(fds)
        send_int(sock, pid)
        if pid > 0:
            send_int(sock, exit_status(pid))
            reaped = sock.recv(1)  # empty when the executor went away
            os.waitpid(pid, 0)
            if reaped != REAP:
                return


def site_folders():
    """The folders on sys.path (less the script's) with their modification times: a file
    added to one, say a .pth or a package, changes what a fresh interpreter would start with."""
    found = []
    for folder in sys.path[1:]:
        try:
            found.append((folder, os.stat(folder).st_mtime_ns))
        except OSError:
            pass
    return found


def receive_fds(sock):
    """The FDS descriptors of the next step, or None when the socket closed."""
    try:
        word, ancillary, _, _ = sock.recvmsg(1, _socket.CMSG_SPACE(FDS * 4))
    except OSError:
        return None
    fds = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += [int.from_bytes(data[i:i + 4], sys.byteorder)
                    for i in range(0, len(data) - len(data) % 4, 4)]
    if word != FORK or len(fds) != FDS:
        return None
    return fds


def send_int(sock, number):
    sock.sendall(number.to_bytes(INT_BYTES, "big", signed=True))


def send_bytes(sock, data):
    sock.sendall(framed(data))


def framed(data):
    """Data as the other side reads it: its length, then itself."""
    return len(data).to_bytes(INT_BYTES, "big", signed=True) + data


def close_all(fds):
    for fd in fds:
        os.close(fd)


def exit_status(pid):
    """The child's exit code, or minus the signal that ended it, leaving it unreaped."""
    found = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    if found.si_code == os.CLD_EXITED:
        return found.si_status
    return -found.si_status


def become_step(sock, fds, template):
    """In the template's child: lead a new session as the step's supervisor, and become the
    step in a child of it."""
    sock.close()
    os.setsid()  # a group of its own: a timeout or cancel reaches its children too
    stdout, stderr, metrics, launch_fd, lease = fds
    supervisor = os.getpid()
    try:
        step = os.fork()
    except OSError as exc:
        os.write(stderr, f"could not start the step: {exc}\n".encode())
        os._exit(1)
    if step:
        close_all((stdout, stderr, metrics, launch_fd))
        supervise(step, lease, template)
    os.close(lease)
    if not die_with_parent(_signal.SIGKILL, supervisor):
        os._exit(NOT_LAUNCHED_EXIT)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.close(stdout)
    os.close(stderr)
    launch = read_launch(launch_fd)
    if launch is None:
        os._exit(NOT_LAUNCHED_EXIT)
    confine(launch, supervisor)
    os.set_inheritable(metrics, True)  # as Popen's pass_fds leaves it, for the step's children
    launch["env"][launch["metrics_fd_var"]] = str(metrics)
    del sys.modules["_socket"]  # a step that imports socket loads it as a fresh one would
    del sys.modules["gc"]
    enter(launch)
    run_as_main(launch["args"])


def write_launch(fd, launch):
    """The executor's side of read_launch: write the launch on the pipe and close it."""
    try:
        with open(fd, "wb") as pipe:
            pipe.write(framed(marshal.dumps(launch, 4)))
    except OSError:
        pass  # the step is gone already; its supervisor tells how it ended


def read_launch(fd):
    """The launch the executor wrote, or None when the pipe closed before a whole one came."""
    try:
        size = int.from_bytes(read_exactly(fd, INT_BYTES), "big", signed=True)
        return marshal.loads(read_exactly(fd, size))
    except (OSError, EOFError, ValueError):
        return None
    finally:
        os.close(fd)


def read_exactly(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def enter(launch):
    os.chdir(launch["cwd"])
    os.environ.clear()
    os.environ.update(launch["env"])
    site.USER_BASE = site.USER_SITE = None  # found again from the step's HOME when asked
    # Where `python ...` puts PYTHONPATH: after the script's folder, before the standard library.
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[0:1] = ["", *extra]


def run(args):
    main = type(sys)("__main__")  # as Python's own, less what this file defined in its own
    main.__loader__ = _frozen_importlib.BuiltinImporter
    main.__annotations__ = {}
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    sys.orig_argv = [sys.orig_argv[0], *args]
    first, rest = args[0], args[1:]
    if first in ("-m", "-c") and not rest:
        print(f"Argument expected for the {first} option", file=sys.stderr)
        sys.exit(2)
    if first == "-m":
        import runpy

        sys.argv = ["-m", *rest[1:]]
        sys.path[0] = os.getcwd()
        runpy._run_module_as_main(rest[0])  # what `python -m` itself calls
        return
    if first == "-c":
        sys.argv = ["-c", *rest[1:]]
        code = compile(rest[0], "<string>", "exec", dont_inherit=True)
    else:
        sys.argv = args
        path = os.path.abspath(first)
        sys.path[0] = os.path.dirname(os.path.realpath(path))
        try:
            with open(path, "rb") as script:
                source = script.read()
        except OSError as exc:
            print(f"{sys.executable}: can't open file {path!r}: [Errno {exc.errno}] "
                  f"{exc.strerror}", file=sys.stderr)
            sys.exit(2)
        main.__loader__ = _frozen_importlib_external.SourceFileLoader("__main__", path)
        main.__file__, main.__cached__ = path, None
        code = compile(source, path, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def run_as_main(args):
    """run(args), with an uncaught exception printed and exited on as Python itself does,
    less this file's frames."""
    try:
        run(args)
    except SystemExit:
        raise
    except BaseException as exc:
        traceback = exc.__traceback__
        while traceback is not None and traceback.tb_frame.f_code.co_filename == __file__:
            traceback = traceback.tb_next
        sys.excepthook(type(exc), exc, exc.with_traceback(traceback).__traceback__)
        if isinstance(exc, KeyboardInterrupt):
            end_as_interrupted()
        sys.exit(1)


def end_as_interrupted():
    """What Python does after an uncaught KeyboardInterrupt: shut down as usual (threads
    joined, atexit run, output flushed), then end by SIGINT, as the interrupt came."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit  # built in: no folder can shadow it, and the step's code has run

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    os.kill(os.getpid(), _signal.SIGINT)


# --- The supervisor ---------------------------------------------------------------------


def libc_prctl():
    """prctl from the C library on Linux, else None. What importing ctypes added to
    sys.modules is taken out again, so that a step forked later imports its own ctypes as a
    fresh interpreter would."""
    if not sys.platform.startswith("linux"):
        return None
    loaded = set(sys.modules)
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    finally:
        for name in set(sys.modules) - loaded:
            del sys.modules[name]


def load_sandbox():
    """runner/sandbox.py's functions (Linux), else None; loaded as libc_prctl loads ctypes,
    leaving sys.modules as it found it. Not imported as a module: neither `python -I` nor a
    step's own folder may decide which file it is."""
    if not sys.platform.startswith("linux"):
        return None
    loaded = set(sys.modules)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox.py")
    namespace = {"__name__": "runner_sandbox", "__file__": path}
    try:
        with open(path, "rb") as source:
            exec(compile(source.read(), path, "exec", dont_inherit=True), namespace)
        return namespace
    except (ImportError, OSError, AttributeError):
        return None
    finally:
        for name in set(sys.modules) - loaded:
            del sys.modules[name]


def confine(launch, supervisor):
    """Before any of the step's code: apply its confinement (another user, Landlock: S11), or
    end without running it. A change of user clears the parent-death signal: asked again."""
    confinement = launch.get("confinement")
    if not confinement:
        return
    try:
        if _sandbox is None:
            raise OSError("this platform cannot confine a step")
        _sandbox["confine"](confinement)
    except OSError as exc:
        os.write(2, f"could not confine the step, so it did not run: {exc}\n".encode())
        os._exit(NOT_CONFINED_EXIT)
    if not die_with_parent(_signal.SIGKILL, supervisor):
        os._exit(NOT_LAUNCHED_EXIT)


def die_with_parent(signal_number, parent):
    """Have the kernel send this process `signal_number` when its parent ends (Linux; nothing
    elsewhere); False if the parent has ended already, as the request then never fires."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal_number)
    return os.getppid() == parent


def supervise(step, lease, parent):
    """Lead the step's process group until the step ends, then end as it did; stop the group
    when the worker's lease on `lease` ends, the worker closes that pipe or `parent` ends.
    Never returns."""
    import select  # not signal: it imports enum, milliseconds on the step's path
    import time

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # nothing of the supervisor's own reaches the step's output pipes
        os.dup2(devnull, fd)
    os.close(devnull)
    signals = _listen((_signal.SIGCHLD, _signal.SIGHUP))
    if not die_with_parent(_signal.SIGHUP, parent):
        _kill_group()
    lease_end = _read_first_lease(lease)
    kill_at = float("inf")
    poller = select.poll()
    poller.register(lease, select.POLLIN)
    poller.register(signals, select.POLLIN)
    while True:
        ended, status = os.waitpid(step, os.WNOHANG)
        if ended:
            _end_as(status)
        now = time.monotonic()
        if now >= kill_at:
            _kill_group()
        if kill_at == float("inf") and now >= lease_end + TERM_AFTER_LEASE_S:
            kill_at = now + KILL_GRACE_S
            os.killpg(0, _signal.SIGTERM)  # the supervisor ignores it (SUPERVISOR_IGNORES)
        wake_at = kill_at if kill_at < float("inf") else lease_end + TERM_AFTER_LEASE_S
        for fd, _ in poller.poll(_milliseconds(wake_at - now)):
            if fd == lease:
                lease_end = _read_lease(lease, lease_end)
                continue
            if _signal.SIGHUP in os.read(signals, 64) and os.getppid() != parent:
                _kill_group()  # the parent died: the kernel reparents before it signals


def _listen(numbers):
    """The read end of a pipe that receives the number of each of `numbers` as it comes;
    the other signals that would end this process before its step are ignored."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    _signal.set_wakeup_fd(write_end)
    for number in numbers:
        _signal.signal(number, lambda *_: None)  # a handler, so that the wakeup fd is written
    for name in SUPERVISOR_IGNORES:
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_IGN)
    return read_end


def _read_first_lease(lease):
    """The lease the executor wrote before the launch; the group goes if the worker is gone."""
    try:
        return _lease_value(read_exactly(lease, LEASE_BYTES))
    except (OSError, EOFError):
        _kill_group()


def _read_lease(lease, current):
    """The latest lease on the pipe; the group goes once the worker's end is closed."""
    data = os.read(lease, LEASE_BYTES * 512)  # writes of LEASE_BYTES are whole on a pipe
    if not data:
        _kill_group()
    if len(data) < LEASE_BYTES:
        return current
    last = len(data) - len(data) % LEASE_BYTES
    return _lease_value(data[last - LEASE_BYTES:last])


def _lease_value(data):
    import struct

    return struct.unpack("!d", data)[0]


def _milliseconds(seconds):
    """poll()'s timeout: None to wait for an event alone, else at least 0."""
    if seconds == float("inf"):
        return None
    return min(MAX_POLL_MS, max(0, int(seconds * 1000) + 1))


def _kill_group():
    os.killpg(0, _signal.SIGKILL)  # the supervisor with it


def _end_as(status):
    """Exit as the step did: with its exit code, or by the signal that ended it."""
    import resource

    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the step's core, not ours, if any
        if -code != _signal.SIGKILL:
            _signal.signal(-code, _signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code  # only for a signal that does not end a process by default
    os._exit(code)


def supervise_command(lease, launch_fd, error_fd, parent):
    """The spawn path: fork the step, which executes the launch's command as it is, and
    supervise it. The step writes the errno on `error_fd` if it cannot execute the command;
    the executor sees the pipe close empty once it has."""
    supervisor = os.getpid()
    try:
        step = os.fork()
    except OSError as exc:
        os.write(error_fd, str(exc.errno).encode())
        os._exit(1)
    if step == 0:
        os.close(lease)
        if not die_with_parent(_signal.SIGKILL, supervisor):
            os._exit(NOT_LAUNCHED_EXIT)
        execute_launch(launch_fd, error_fd)
    os.close(launch_fd)
    os.close(error_fd)
    supervise(step, lease, parent)


def execute_launch(launch_fd, error_fd):
    launch = read_launch(launch_fd)
    if launch is None:
        os._exit(NOT_LAUNCHED_EXIT)
    confine(launch, os.getppid())
    os.set_inheritable(error_fd, False)  # closed by a successful exec
    for name in ("SIGPIPE", "SIGXFSZ"):  # ignored by Python; a command starts with neither
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    try:
        os.chdir(launch["cwd"])
        os.execvpe(launch["args"][0], launch["args"], launch["env"])
    except OSError as exc:
        os.write(error_fd, str(exc.errno).encode())
    os._exit(127)


def main(args):
    global _prctl, _sandbox
    _prctl = libc_prctl()
    _sandbox = load_sandbox()
    if args[0] == COMMAND:
        supervise_command(*map(int, args[1:5]))
    serve(_socket.socket(fileno=int(args[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
