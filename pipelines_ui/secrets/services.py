"""What a step gets of its workspace's secrets: the values of the names its node declared."""

from __future__ import annotations

from collections.abc import Iterable

from pipelines_ui.secrets.models import Secret


def declared_values(workspace_id: int, names: Iterable[str]) -> dict[str, str]:
    """name -> value for each declared name the workspace defines (the StepJob's `secrets`).

    A name the workspace does not define is left out: the step sees no such variable.
    """
    wanted = list(names)
    if not wanted:
        return {}
    return dict(Secret.objects.filter(workspace_id=workspace_id, name__in=wanted)
                .values_list("name", "value"))


def defined_names(workspace_id: int, names: Iterable[str]) -> set[str]:
    """Those of `names` that the workspace defines."""
    wanted = set(names)
    if not wanted:
        return set()
    return set(Secret.objects.filter(workspace_id=workspace_id, name__in=wanted)
               .values_list("name", flat=True))
