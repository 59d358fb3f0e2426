"""Pipelines: the component palette of a workspace and spec validation against it."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from pipelines_ui.accounts.models import Workspace
from pipelines_ui.pipelines.models import Component
from runner.components import BUILTINS, ComponentDef
from runner.spec import Spec, SpecError, validate_spec


class SpecInvalid(Exception):
    """A document or its run parameters broke the rules; `errors` name node and field."""

    def __init__(
        self, errors: list[SpecError], detail: str = "The pipeline spec is invalid."
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors

    def to_dict(self) -> dict[str, Any]:
        return {"detail": self.detail, "errors": [e.to_dict() for e in self.errors]}


def component_registry(workspace: Workspace) -> dict[str, ComponentDef]:
    """Built-in components plus the workspace's registered ones, by "name@version"."""
    registry = dict(BUILTINS)
    for component in Component.objects.filter(workspace=workspace):
        registry[f"{component.name}@{component.version}"] = component.to_def()
    return registry


def check_spec(workspace: Workspace, document: Any) -> Spec:
    """The validated spec, or SpecInvalid naming every problem."""
    spec, errors = validate_spec(
        document, component_registry(workspace), max_bytes=settings.PIPELINES_MAX_SPEC_BYTES
    )
    if errors:
        raise SpecInvalid(errors)
    assert spec is not None
    return spec
