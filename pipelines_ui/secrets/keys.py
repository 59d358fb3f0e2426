"""The keys that encrypt workspace secrets at rest (docs/reliability.md S17).

`PIPELINES_SECRETS_KEY` holds one Fernet key, or several separated by commas, newest first:
values are encrypted with the first, and decrypted with whichever of them encrypted them. To
rotate, put a new key first, run `manage.py rotate_secrets_key` (every value re-encrypted with
it), then remove the old one. Without the variable, the server reads var/secrets.key, which
`manage.py up` writes on its first start.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KEY_VARIABLE = "PIPELINES_SECRETS_KEY"

__all__ = ["InvalidToken", "KeysUnusable", "decrypt", "encrypt", "ensure_key_file",
           "keys_problem", "new_key", "rotate"]


class KeysUnusable(ImproperlyConfigured):
    """No key is configured, or one is not a Fernet key."""


def new_key() -> str:
    return Fernet.generate_key().decode()


def configured_keys() -> list[str]:
    return [key.strip() for key in settings.PIPELINES_SECRETS_KEY.split(",") if key.strip()]


def keys_problem() -> str | None:
    """What is wrong with the configured keys, if anything (the deploy check's words).
    Never quotes a key."""
    keys = configured_keys()
    if not keys:
        return f"{KEY_VARIABLE} is not set: workspace secrets cannot be stored or decrypted."
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            return (f"Key {position} of {KEY_VARIABLE} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes).")
    return None


def _fernet() -> MultiFernet:
    problem = keys_problem()
    if problem is not None:
        raise KeysUnusable(problem)
    # Built on each use, not cached: a key added or removed takes effect at once (and in tests).
    return MultiFernet([Fernet(key) for key in configured_keys()])


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    """The value; InvalidToken when none of the keys encrypted it."""
    return _fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """The same value, encrypted with the newest key; InvalidToken as decrypt."""
    return _fernet().rotate(token.encode()).decode()


def ensure_key_file(path: Path) -> str:
    """The key in `path`, written there first (mode 0600) if there is none yet. Two processes
    starting at once agree: the file appears whole, and only once (a hard link does not
    replace an existing file)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=".secrets-key-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(new_key() + "\n")
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(draft)
    return path.read_text().strip()
