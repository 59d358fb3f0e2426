"""Re-encrypting every stored secret with the newest key, so older keys can be removed (S17)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines_ui.secrets import keys
from pipelines_ui.secrets.models import Secret


@dataclass
class Rotation:
    rotated: int = 0
    changed_meanwhile: int = 0
    # "workspace/NAME" of each value none of the keys decrypts: removing a key loses nothing
    # more for them, but their values must be set again.
    unreadable: list[str] = field(default_factory=list)


def rotate_all() -> Rotation:
    """Each value re-encrypted with the first key of PIPELINES_SECRETS_KEY. A row is written
    only if it still holds what was read (compare-and-set), so a value set meanwhile through
    the API, already under the newest key, is never replaced by the old one."""
    rotation = Rotation()
    rows = Secret.objects.values_list("pk", "encrypted_value", "workspace__slug", "name")
    for pk, token, workspace, name in rows.iterator(chunk_size=500):
        try:
            fresh = keys.rotate(token)
        except keys.InvalidToken:
            rotation.unreadable.append(f"{workspace}/{name}")
            continue
        if Secret.objects.filter(pk=pk, encrypted_value=token).update(encrypted_value=fresh):
            rotation.rotated += 1
        else:
            rotation.changed_meanwhile += 1
    return rotation
