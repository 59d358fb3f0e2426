"""What a step gets of its workspace's secrets: the values of the names its node declared."""

from __future__ import annotations

from collections.abc import Iterable

from pipelines_ui.secrets import keys
from pipelines_ui.secrets.models import Secret, SecretUnreadable


def declared_values(workspace_id: int, names: Iterable[str]) -> dict[str, str]:
    """name -> value for each declared name the workspace defines (the StepJob's `secrets`),
    decrypted. A name the workspace does not define is left out: the step sees no such
    variable. SecretUnreadable when a value cannot be decrypted."""
    return {secret.name: secret.value for secret in _declared(workspace_id, names)}


def unreadable_problem(workspace_id: int, names: Iterable[str]) -> str | None:
    """Why a step that declared `names` cannot be given them: a value that none of the keys
    decrypts (one was removed before its values were rotated), or no usable key at all. None
    when all can be given."""
    try:
        declared_values(workspace_id, names)
    except (SecretUnreadable, keys.KeysUnusable) as exc:
        return str(exc)
    return None


def defined_names(workspace_id: int, names: Iterable[str]) -> set[str]:
    """Those of `names` that the workspace defines."""
    wanted = set(names)
    if not wanted:
        return set()
    return set(Secret.objects.filter(workspace_id=workspace_id, name__in=wanted)
               .values_list("name", flat=True))


def _declared(workspace_id: int, names: Iterable[str]) -> list[Secret]:
    wanted = list(names)
    if not wanted:
        return []
    return list(Secret.objects.filter(workspace_id=workspace_id, name__in=wanted)
                .only("workspace_id", "name", "encrypted_value"))
