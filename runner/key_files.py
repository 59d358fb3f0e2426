"""Keys kept under var/ when the environment names none (the server's SECRET_KEY and the
secrets key of S17, which `manage.py up` writes; the embedded Valkey's password): written once,
readable by their owner only."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def keep_key_file(path: Path, make: Callable[[], str]) -> str:
    """The key in `path`, written there first (mode 0600) from `make()` if there is none yet.
    Two processes starting at once agree: the file appears whole, and only once (a hard link
    does not replace an existing file)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(make() + "\n")
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(draft)
    return path.read_text().strip()
