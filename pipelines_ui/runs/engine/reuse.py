"""What decides whether a step runs or reuses an earlier identical step's outputs.

A step's fingerprint covers its code, parameters, inputs and environment (runner.fingerprint).
A ready step whose fingerprint matches a succeeded step of the workspace, whose outputs all
still exist, reuses it; otherwise it runs, and the reason says what changed since the
pipeline's previous run of that node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.data.models import Artifact
from pipelines_ui.runs.engine.component_hooks import extra_inputs
from pipelines_ui.runs.engine.dispatch import input_artifacts
from pipelines_ui.runs.engine.frozen_spec import FrozenSpec, frozen_spec
from pipelines_ui.runs.models import Run, StepRun
from runner.components import ComponentDef
from runner.fingerprint import fingerprint, fingerprint_parts
from runner.spec import Spec, resolve_params


def fingerprint_step(run: Run, frozen: FrozenSpec, step: StepRun,
                     parents: Mapping[str, StepRun]) -> None:
    """Resolve the step's parameters and inputs (from its `parents`' outputs), and what
    decides its reuse."""
    spec = frozen.spec
    node = spec.node(step.node)
    step.params = resolve_params(node, run.parameters)
    step.inputs = input_digests(spec, node.id, {
        parent: parents[parent].outputs for parent, _ in spec.inputs_of(node.id).values()})
    step.inputs.update(extra_inputs(run.workspace_id, node.component, step.params))
    step.fingerprint_parts = node_parts(node, step.params, step.inputs, frozen.components,
                                        step.compute_target)
    step.fingerprint = fingerprint(step.fingerprint_parts)


def input_digests(spec: Spec, node_id: str,
                  outputs: dict[str, dict[str, str]]) -> dict[str, str]:
    """The node's input port -> digest of the parent output that feeds it (where there is one)."""
    return {
        port: outputs[parent][parent_port]
        for port, (parent, parent_port) in spec.inputs_of(node_id).items()
        if parent_port in outputs.get(parent, {})
    }


def node_parts(node, params: dict[str, Any], inputs: dict[str, str],
               registry: dict[str, ComponentDef], target: ComputeTarget | None) -> dict[str, Any]:
    """What decides reuse: code, parameters, inputs and environment (never position or order)."""
    environment = {
        "component": node.component,
        "python": (target.python if target else "") or "worker default",
        "env": dict(node.env),
        "secrets": sorted(node.secrets),
        # A node declaring more outputs must not reuse a step that produced fewer.
        "outputs": sorted(port.name for port in node.outputs),
    }
    return fingerprint_parts(code_digest=registry[node.component].code_digest, params=params,
                             inputs=inputs, environment=environment)


def reusable_steps(workspace_id: int, fingerprints: list[str],
                   exclude_run: int | None = None) -> dict[str, StepRun]:
    """fingerprint -> the latest succeeded step of the workspace with that fingerprint whose
    outputs all still exist (of its 5 latest), for each of `fingerprints` that has one."""
    if not fingerprints:
        return {}
    candidates = list(_latest_of_each(
        StepRun.objects.filter(run__workspace=workspace_id, state="succeeded", allow_reuse=True)
        .exclude(run=exclude_run).only("run_id", "node", "outputs", "fingerprint"),
        "fingerprint", set(fingerprints), ("-finished_at", "-id"), count=5))
    existing = set(Artifact.objects.filter(
        workspace=workspace_id,
        digest__in={d for c in candidates for d in c.outputs.values()},
    ).values_list("digest", flat=True))
    found: dict[str, StepRun] = {}
    for candidate in candidates:  # the latest first, for each fingerprint
        if candidate.fingerprint not in found and existing.issuperset(candidate.outputs.values()):
            found[candidate.fingerprint] = candidate
    return found


class EarlierSteps:
    """The earlier steps that one advance of a run may reuse, and the artifacts it has seen.

    Where a run starts, `preload` reads the latest succeeded step of each of its pipeline's
    nodes, with their outputs' artifacts, in two queries: a rerun's steps, made ready one round
    after another down a chain, then find theirs without a query each. A fingerprint not among
    them is looked up in the whole workspace (`reusable_steps`), as every lookup is otherwise.
    """

    def __init__(self, run: Run, *, preload: bool) -> None:
        self.run = run
        self.artifacts: dict[str, Artifact] = {}  # digest -> Artifact, read once
        self._pipeline_steps = self._latest_of_pipeline() if preload else {}

    def find(self, fingerprints: list[str]) -> dict[str, StepRun]:
        """fingerprint -> the earlier step to reuse, for each of `fingerprints` that has one."""
        found = {f: self._pipeline_steps[f] for f in fingerprints if f in self._pipeline_steps}
        rest = [f for f in fingerprints if f not in found]
        found.update(reusable_steps(self.run.workspace_id, rest, exclude_run=self.run.pk))
        return found

    def inputs(self, steps: list[StepRun]) -> dict[str, Artifact]:
        """digest -> Artifact for every input of `steps`, read only where not seen yet."""
        digests = {digest for step in steps for digest in step.inputs.values()}
        unseen = digests - self.artifacts.keys()
        if unseen:
            self.artifacts.update(input_artifacts(self.run.workspace_id, [
                {str(i): digest for i, digest in enumerate(unseen)}]))
        return {d: self.artifacts[d] for d in digests if d in self.artifacts}

    def _latest_of_pipeline(self) -> dict[str, StepRun]:
        """fingerprint -> the pipeline's latest succeeded step of each node, where its outputs
        all exist (their artifacts are kept: they are the next round's inputs)."""
        if not self.run.allow_reuse:
            return {}
        nodes = {node.id for node in frozen_spec(self.run).spec.nodes}
        latest = list(_latest_of_each(
            StepRun.objects.filter(run__pipeline=self.run.pipeline_id, state="succeeded",
                                   allow_reuse=True, run__workspace=self.run.workspace_id)
            .exclude(run=self.run.pk).only("run_id", "node", "outputs", "fingerprint"),
            "node", nodes, ("-finished_at", "-id"), count=1))
        self.artifacts.update(input_artifacts(self.run.workspace_id,
                                              [step.outputs for step in latest]))
        return {step.fingerprint: step for step in latest
                if self.artifacts.keys() >= set(step.outputs.values())}


def previous_parts(pipeline_id: int, nodes: list[str],
                   exclude_run: int | None = None) -> dict[str, dict[str, Any]]:
    """node -> the fingerprint parts of its latest earlier step, to say what changed."""
    if not nodes:
        return {}
    latest = _latest_of_each(
        StepRun.objects.filter(run__pipeline=pipeline_id)
        .exclude(run=exclude_run).exclude(fingerprint=""),
        "node", set(nodes), ("-run__created_at", "-id"), count=1)
    return {node: parts for node, parts in latest.values_list("node", "fingerprint_parts")
            if parts}


def _latest_of_each(rows: QuerySet, field: str, values: set[str], order_by: tuple[str, ...],
                    count: int) -> QuerySet:
    """The first `count` of `rows` by `order_by` for each of the `values` of `field`, in rank
    order. For one value (a chain's case) a plain LIMIT does, which is cheaper to build."""
    rows = rows.filter(**{f"{field}__in": values})
    if len(values) == 1:
        return rows.order_by(*order_by)[:count]
    return (rows.annotate(rank=Window(RowNumber(), partition_by=F(field), order_by=order_by))
            .filter(rank__lte=count).order_by("rank"))
