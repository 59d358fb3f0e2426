"""Run a Python step in an interpreter that started before its step was claimed.

The executor starts `python step_launch.py <fd>` ahead of time: while the claim is in flight,
or, for the next step, while this one runs. Start-up (the largest part of a short step) is
then off the step's path. The interpreter waits here, having run nothing of any step, until
the executor writes the launch to the pipe on <fd>: the step's working directory, environment
and what follows the interpreter on its command line (a script, `-m module` or `-c code`, and
the arguments). It then sets up what `python <that>` would have and runs it. The executor
writes the launch only after a successful claim (R3); the pipe closed empty (an interpreter no
longer wanted, a worker that went away) ends it here.

The interpreter was started with the environment every step shares (the executor's
`_shared_environment`); a step with variables of its own that act while a process starts
(PYTHON*, LD_*, locale: the executor's `_launchable`) is not run this way. /proc/<pid>/environ
keeps showing the shared environment; os.environ is the step's.

Like context.py this runs in the step's interpreter: standard library only.
"""

# Only modules the interpreter has loaded before any script runs: one imported here would be
# the one the step gets, even where its own folder holds a module of that name. For the same
# reason no `from __future__` import: compile() would hand it on to the step's code.
import _frozen_importlib
import _frozen_importlib_external
import marshal
import os
import site
import sys

NOT_LAUNCHED_EXIT = 75  # no step ran, so there is nothing to report
SIZE_BYTES = 8  # the launch is its length, big-endian, then marshal data (version 4)


def read_launch(fd):
    """The launch, or None when the pipe closed before a whole one came."""
    try:
        size = int.from_bytes(_read_exactly(fd, SIZE_BYTES), "big")
        return marshal.loads(_read_exactly(fd, size))
    except (OSError, EOFError, ValueError):
        return None
    finally:
        os.close(fd)  # closed only here: an open launch fd means "still waiting" to onlookers


def _read_exactly(fd, size):
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
        if isinstance(exc, KeyboardInterrupt):  # Python ends by the signal, as it came
            import _signal  # built in: no folder can shadow it

            _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
            os.kill(os.getpid(), _signal.SIGINT)
        sys.exit(1)


if __name__ == "__main__":
    launch = read_launch(int(sys.argv[1]))
    if launch is None:
        os._exit(NOT_LAUNCHED_EXIT)
    enter(launch)
    run_as_main(launch["args"])
