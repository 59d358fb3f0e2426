"""Hooks through which an app above runs gives meaning to the steps of its own components.

The registry's built-in steps (dataset, register-model, ...) run on a worker like any step, but
what they mean happens on the server, at two moments the engine asks about: when a step starts
(inputs the server adds, which count in its fingerprint; why it cannot start) and when it
succeeds (inside the transaction that records its outputs). The registry sits above runs, so
the engine does not import it: the registry registers its hooks here, for its components, when
Django starts (registry/apps.py). A component without hooks is an ordinary step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipelines_ui.runs.models import Run, StepRun


@dataclass(frozen=True)
class ComponentHooks:
    # (workspace id, component, params) -> input port -> artifact digest the server adds
    inputs: Callable[[int, str, dict[str, Any]], dict[str, str]]
    # (workspace id, component, params, inputs) -> why the step cannot start, or None
    start_problem: Callable[[int, str, dict[str, Any], dict[str, str]], str | None]
    # (run, step) -> None: the step just succeeded, in the transaction that records it
    succeeded: Callable[[Run, StepRun], None]


_hooks: dict[str, ComponentHooks] = {}  # component key ("name@version") -> its hooks


def register(components: Iterable[str], hooks: ComponentHooks) -> None:
    for component in components:
        _hooks[component] = hooks


def extra_inputs(workspace_id: int, component: str, params: dict[str, Any]) -> dict[str, str]:
    hooks = _hooks.get(component)
    return hooks.inputs(workspace_id, component, params) if hooks else {}


def start_problem(workspace_id: int, component: str, params: dict[str, Any],
                  inputs: dict[str, str]) -> str | None:
    hooks = _hooks.get(component)
    return hooks.start_problem(workspace_id, component, params, inputs) if hooks else None


def step_succeeded(run: Run, step: StepRun) -> None:
    hooks = _hooks.get(step.component)
    if hooks:
        hooks.succeeded(run, step)
