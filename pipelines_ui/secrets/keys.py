"""The keys that encrypt workspace secrets at rest (docs/reliability.md S17).

`PIPELINES_SECRETS_KEY` holds one Fernet key, or several separated by commas, newest first:
values are encrypted with the first, and decrypted with whichever of them encrypted them. To
rotate, put a new key first, run `manage.py rotate_secrets_key` (every value re-encrypted with
it), then remove the old one. Without the variable, the server reads var/secrets.key, which
`manage.py up` writes on its first start.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KEY_VARIABLE = "PIPELINES_SECRETS_KEY"

__all__ = ["InvalidToken", "KeysUnusable", "decrypt", "encrypt", "keys_problem",
           "new_key", "rotate"]


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

