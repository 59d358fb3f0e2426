"""A run's spec and components as the engine reads them: parsed once per process.

Every event of a run needs them and they never change after submit (a component's version is
immutable), so each process keeps the parsed form of the runs it has seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipelines_ui.pipelines.services import check_spec, component_registry
from pipelines_ui.runs.models import Run
from runner import transitions
from runner.components import ComponentDef
from runner.spec import Spec

_MAX_CACHED = 1000


@dataclass(frozen=True)
class FrozenSpec:
    spec: Spec
    components: dict[str, ComponentDef]  # those the spec names; versions never change
    parents: dict[str, list[str]]  # what transitions.next_actions takes, made once
    policies: dict[str, transitions.NodePolicy]


_cache: dict[tuple[int, datetime], FrozenSpec] = {}


def frozen_spec(run: Run) -> FrozenSpec:
    """The run's spec and components. Keyed by creation time too, since ids can come back
    after a database is reset."""
    frozen = _cache.get((run.pk, run.created_at))
    if frozen is None:
        registry = component_registry(run.workspace_id)
        frozen = remember(run, check_spec(run.workspace_id, run.spec, registry), registry)
    return frozen


def remember(run: Run, spec: Spec, registry: dict[str, ComponentDef]) -> FrozenSpec:
    """Keep the run's `spec`, parsed and checked against the workspace's `registry`, as
    submit has just done: checking a spec of hundreds of nodes again costs milliseconds."""
    frozen = FrozenSpec(
        spec, {node.component: registry[node.component] for node in spec.nodes},
        spec.parents(),
        {n.id: transitions.NodePolicy(n.retries, n.continue_on_failure) for n in spec.nodes})
    if len(_cache) > _MAX_CACHED:
        _cache.clear()
    _cache[(run.pk, run.created_at)] = frozen
    return frozen


def node_policy(run: Run, node_id: str) -> transitions.NodePolicy:
    return frozen_spec(run).policies[node_id]
