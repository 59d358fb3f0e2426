"""The pipeline spec: one JSON document describing a pipeline graph, as a Spec of nodes and
edges, and a run's parameter values for it.

The editor saves the spec, the SDK builds it, the API validates it, versions freeze it and the
orchestrator walks it. `runner.spec_validation.validate_spec` alone decides whether a document
is a valid spec and makes the Spec; this module holds what it makes and the rules it checks.

Node params may refer to pipeline parameters as `${name}`: a string that is exactly one
reference takes the parameter's typed value, a reference inside a longer string is replaced by
the value's text, and `$${` stands for a literal `${`. Only `${` + a valid parameter name + `}`
is a reference; anything else is left as written. References are looked for in values, not keys.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from runner import graph
from runner.components import Port

NODE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # port and pipeline parameter names
COMPONENT_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*@[0-9]+")
COMPUTE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# The runner sets PIPELINES_* variables for every step; a node must not override them.
ENV_NAME = re.compile(r"(?!PIPELINES_)[A-Za-z_][A-Za-z0-9_]{0,127}")
REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
WHOLE_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")

PARAM_TYPES = ("int", "float", "string", "bool")
MAX_RETRIES = 10
MAX_TIMEOUT_S = 7 * 24 * 3600
# Bounds every recursive walk below (ours and jsonschema's) far under Python's recursion limit.
MAX_DEPTH = 64
TOP_KEYS = ("parameters", "nodes", "edges")
NODE_KEYS = ("id", "component", "params", "compute", "allow_reuse", "retries", "timeout_s",
             "continue_on_failure", "position", "label", "ports", "env", "secrets")
PARAM_KEYS = ("type", "default", "description")
PORT_KEYS = ("name", "type", "optional", "description")
NAME_RULE = "must start with a letter or _ and hold only letters, digits and _ (at most 64)"


@dataclass(frozen=True)
class SpecError:
    """One thing wrong with a spec: which node (if any), which field, and what to fix."""

    node: str | None
    field: str | None
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return {"node": self.node, "field": self.field, "message": self.message}


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


@dataclass(frozen=True)
class ParamDef:
    """A pipeline parameter; one without a default must be given at run time."""

    name: str
    type: str
    default: Any = None
    required: bool = True
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        default = {} if self.required else {"default": self.default}
        return {"type": self.type, **default, "description": self.description}


@dataclass(frozen=True)
class Node:
    """A step of the pipeline; its ports are its component's, or its own `ports`."""

    id: str
    component: str
    params: dict[str, Any] = field(default_factory=dict)
    compute: str = "local"
    allow_reuse: bool = True
    retries: int = 0
    timeout_s: int = 3600
    continue_on_failure: bool = False
    position: dict[str, Any] | None = None
    label: str | None = None
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    declares_ports: bool = False  # the ports came from the node (a component with dynamic_ports)

    def to_dict(self) -> dict[str, Any]:
        data = {key: copy.deepcopy(getattr(self, key)) for key in NODE_KEYS if key != "ports"}
        data["secrets"] = list(self.secrets)
        for key in ("position", "label"):
            if data[key] is None:
                del data[key]
        if self.declares_ports:
            data["ports"] = {"inputs": [p.to_dict() for p in self.inputs],
                             "outputs": [p.to_dict() for p in self.outputs]}
        return data


@dataclass(frozen=True)
class Edge:
    """Output `from_port` of `from_node` feeds input `to_port` of `to_node`."""

    from_node: str
    from_port: str
    to_node: str
    to_port: str

    def to_dict(self) -> dict[str, str]:
        return {"from": f"{self.from_node}.{self.from_port}",
                "to": f"{self.to_node}.{self.to_port}"}


@dataclass(frozen=True)
class Spec:
    """A validated pipeline spec; nodes and edges keep the document's order."""

    parameters: dict[str, ParamDef]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    @cached_property
    def _index(self) -> dict[str, Node]:
        return {node.id: node for node in self.nodes}

    def node(self, node_id: str) -> Node:
        """The node with this id; KeyError if there is none."""
        return self._index[node_id]

    @cached_property
    def _parents(self) -> dict[str, list[str]]:
        return graph.parents_of(self._index, ((e.from_node, e.to_node) for e in self.edges))

    @cached_property
    def _inputs(self) -> dict[str, dict[str, tuple[str, str]]]:
        inputs: dict[str, dict[str, tuple[str, str]]] = {node.id: {} for node in self.nodes}
        for e in self.edges:
            inputs[e.to_node][e.to_port] = (e.from_node, e.from_port)
        return inputs

    def parents(self) -> dict[str, list[str]]:
        """Every node id mapped to the ids of the nodes that feed it."""
        return {node: list(parents) for node, parents in self._parents.items()}

    def inputs_of(self, node_id: str) -> dict[str, tuple[str, str]]:
        """The node's connected inputs: input port -> (from node, from port)."""
        return dict(self._inputs[node_id])

    def to_dict(self) -> dict[str, Any]:
        """The normalized document, every default written out; it validates to an equal Spec."""
        return {"parameters": {name: p.to_dict() for name, p in self.parameters.items()},
                "nodes": [node.to_dict() for node in self.nodes],
                "edges": [edge.to_dict() for edge in self.edges]}


def as_type(ptype: str, value: Any) -> tuple[bool, Any]:
    """Whether `value` is a `ptype`, and the value as that type (an int given for a float
    becomes a float, so that 1 and 1.0 give the same fingerprint)."""
    if ptype in ("bool", "string"):
        return isinstance(value, bool if ptype == "bool" else str), value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False, value  # bool is an int to Python, never to a pipeline
    if ptype == "int":
        return isinstance(value, int), value
    try:
        number = float(value)
    except OverflowError:
        return False, value
    return math.isfinite(number), number


def type_rule(ptype: str, value: Any) -> str:
    kinds = {"int": "a whole number", "float": "a number", "string": "a string",
             "bool": "true or false"}
    return f"must be {kinds[ptype]} (the parameter is {ptype}), not {show(value)}"


def whole_reference(value: str) -> str | None:
    match = WHOLE_REFERENCE.fullmatch(value)
    return match.group(1) if match else None


def check_run_parameters(
    spec: Spec, values: Mapping[str, Any]
) -> tuple[dict[str, Any], list[SpecError]]:
    """Check the parameters given for a run: every parameter's typed value (defaults filled in)
    and the errors. The values are complete only when there are no errors."""
    if not isinstance(values, Mapping):
        return {}, [SpecError(None, "parameters", "run parameters must be an object")]
    errors: list[SpecError] = []
    typed: dict[str, Any] = {}
    for name, value in values.items():
        param = spec.parameters.get(name)
        fits, typed_value = as_type(param.type, value) if param else (False, value)
        if fits:
            typed[name] = typed_value
        elif param is None:
            known = ", ".join(spec.parameters) or "none"
            errors.append(SpecError(None, f"parameters.{name}", f"unknown parameter {name}; "
                                    f"the pipeline's parameters: {known}"))
        else:
            errors.append(SpecError(None, f"parameters.{name}", type_rule(param.type, value)))
    for name, param in spec.parameters.items():
        if name in values:
            continue
        if param.required:
            errors.append(SpecError(None, f"parameters.{name}", f"parameter {name} "
                                    f"({param.type}) has no default and must be given"))
        else:
            typed[name] = param.default
    return {name: typed[name] for name in spec.parameters if name in typed}, errors


def resolve_params(node: Node, values: Mapping[str, Any]) -> dict[str, Any]:
    """The node's params with `${name}` references replaced by run values.

    Raises KeyError for a reference without a value; `check_run_parameters` gives complete
    values for a valid spec.
    """
    return {key: _substitute(value, values) for key, value in node.params.items()}


def _substitute(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    if not isinstance(value, str):
        return value
    whole = whole_reference(value)
    if whole is not None:
        return values[whole]
    return REFERENCE.sub(lambda m: str(values[m.group(1)]) if m.group(1) else "${", value)


def show(value: Any) -> str:
    """A value as it appears in JSON, clipped for a message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return clip(text, 60)


def clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
