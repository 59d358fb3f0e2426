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
reads an empty pipe and runs nothing. The child becomes the step in a session of its own and
runs it as `python <that>` would. The template answers with its exit status and reaps it once
the executor says so, after the executor has killed the step's process group: the group's id
is never signalled once its leader is reaped. The socket closed ends the template.

The template started with the environment every step shares (the executor's
`_shared_environment`); a step with variables of its own that act while a process starts
(PYTHON*, LD_*, locale: the executor's `_launchable`) is not run this way. What a forked step
shares with its template and so with the other steps of its worker process: the hash seed of
str and bytes, its parent process, and /proc/<pid>/cmdline and environ (os.environ is the
step's own). The template's own objects are frozen out of the collector's reach (gc.freeze:
gc.get_freeze_count() is not 0, gc.get_objects() leaves them out), so that neither the step's
collections nor its exit write to their pages: each write would copy a page, and an exit
cost 7 ms instead of 4.

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
FDS = 4  # the step's stdout, stderr and metrics pipes, then the launch pipe's read end
FORK = b"f"  # the executor's word that comes with those
REAP = b"r"  # the executor's word that the step's process group may go
NOT_LAUNCHED_EXIT = 75  # a child that got no launch ran nothing


def serve(sock):
    """Tell the executor the site folders, then fork a step for each launch until the socket
    closes."""
    send_bytes(sock, marshal.dumps(site_folders(), 4))
    gc.freeze()  # see the module's docstring
    while True:
        fds = receive_fds(sock)
        if fds is None:
            return
        try:
            pid = os.fork()
        except OSError as exc:
            pid = -exc.errno
        if pid == 0:
            become_step(sock, fds)
            sys.exit()  # the step ended normally: exit as Python does after a script
        for fd in fds:
            os.close(fd)
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


def exit_status(pid):
    """The child's exit code, or minus the signal that ended it, leaving it unreaped."""
    found = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    if found.si_code == os.CLD_EXITED:
        return found.si_status
    return -found.si_status


def become_step(sock, fds):
    sock.close()
    os.setsid()  # a group of its own: a timeout or cancel reaches its children too
    stdout, stderr, metrics, launch_fd = fds
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.close(stdout)
    os.close(stderr)
    launch = read_launch(launch_fd)
    if launch is None:
        os._exit(NOT_LAUNCHED_EXIT)
    os.set_inheritable(metrics, True)  # as Popen's pass_fds leaves it, for the step's children
    launch["env"][launch["metrics_fd_var"]] = str(metrics)
    del sys.modules["_socket"]  # a step that imports socket loads it as a fresh one would
    del sys.modules["gc"]
    enter(launch)
    run_as_main(launch["args"])


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


if __name__ == "__main__":
    serve(_socket.socket(fileno=int(sys.argv[1])))
