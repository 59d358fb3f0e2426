"""Hold a Python step at its start until the worker has claimed the attempt.

The executor puts this file on the step's PYTHONPATH as `sitecustomize`, which the interpreter
imports once it has started and before it runs the script. So the interpreter's start-up (the
largest part of a short step) overlaps the claim's round trip to the server, and still no step
code runs before the claim succeeds (R3): a refused claim, or a worker that went away, closes
the gate and the process exits here.

Like context.py this runs in the step's interpreter: standard library only.
"""

from __future__ import annotations

import os
import sys

GATE_VAR = "PIPELINES_GATE"  # "<fd>:<inode>": the read end of the gate pipe
OPEN = b"1"
NOT_CLAIMED_EXIT = 75  # never reported: a step that is not claimed has no one to report it


def gate_value(fd: int) -> str:
    """What GATE_VAR holds; the inode tells the gate from a later file with the same number."""
    return f"{fd}:{os.fstat(fd).st_ino}"


def wait_at_gate() -> None:
    gate = os.environ.pop(GATE_VAR, None)
    if gate is None:
        return  # started by hand, or by a worker that claimed first
    fd = int(gate.partition(":")[0])
    try:
        opened = os.read(fd, len(OPEN)) == OPEN
    except OSError:
        opened = False
    finally:
        os.close(fd)  # closed only here: an open gate fd means "still waiting" to onlookers
    if not opened:
        os._exit(NOT_CLAIMED_EXIT)


def run_shadowed_sitecustomize() -> None:
    """Import the sitecustomize this file shadows (a virtualenv's or the system's), if any.

    Looked for with a few stat calls first: searching every folder of sys.path with importlib
    costs milliseconds, on every step.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        folder = os.path.abspath(entry or os.curdir)
        if folder != here and any(os.path.exists(os.path.join(folder, "sitecustomize" + end))
                                  for end in (".py", ".pyc", "")):
            break
    else:
        return
    import importlib.machinery
    import importlib.util

    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [entry])
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":
    wait_at_gate()
    run_shadowed_sitecustomize()
