"""Validating a pipeline spec: `validate_spec`, the one validator (runner/spec.py holds what it
produces: the Spec, its nodes and edges, and the errors).

It is total: any JSON-like input gives a result, never an exception, and each error names the
node and the field a person has to fix. It checks the document's size and depth, the pipeline
parameters, each node (component, options, params and their `${name}` references, ports), the
edges, required inputs and cycles.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

from runner import graph
from runner.components import PORT_TYPES, ComponentDef, Port
from runner.spec import (
    COMPONENT_KEY,
    COMPUTE,
    ENV_NAME,
    MAX_DEPTH,
    MAX_RETRIES,
    MAX_TIMEOUT_S,
    NAME,
    NAME_RULE,
    NODE_ID,
    NODE_KEYS,
    PARAM_KEYS,
    PARAM_TYPES,
    PORT_KEYS,
    REFERENCE,
    TOP_KEYS,
    Edge,
    Node,
    ParamDef,
    Spec,
    SpecError,
    as_type,
    clip,
    show,
    type_rule,
    whole_reference,
)

Report = Callable[[str, str], None]  # (field, message) for one node or for the document
Components = Mapping[str, ComponentDef]
Parameters = dict[str, ParamDef | None]  # None: declared with an unknown type
Path = tuple[Any, ...]  # a place inside a node's params


def validate_spec(document: Any, components: Mapping[str, ComponentDef], *,
                  max_bytes: int = 1_000_000, max_nodes: int = 1000,
                  max_edges: int = 5000) -> tuple[Spec | None, list[SpecError]]:
    """Validate a spec document: (Spec, []) when it is valid, else (None, errors).

    Errors come in document order: the document as a whole, parameters, each node, each edge,
    then what only the whole graph shows (unconnected required inputs, a cycle).
    """
    problem = _encoding_problem(document, max_bytes)
    if problem or not isinstance(document, dict):
        return None, [SpecError(None, None, problem or "the spec must be a JSON object")]
    errors: list[SpecError] = []

    def report(field: str, message: str) -> None:
        errors.append(SpecError(None, field, message))

    for key in document:
        if key not in TOP_KEYS:
            report(str(key), f"unknown field {show(key)}; a spec has parameters, nodes, edges")
    raw_nodes, raw_edges = _list_at(document, "nodes", report), _list_at(document, "edges", report)
    # Past a limit a document is not worth reading in detail: say so and stop.
    for what, count, limit in (("nodes", len(raw_nodes), max_nodes),
                               ("edges", len(raw_edges), max_edges)):
        if count > limit:
            report(what, f"the spec has {count} {what}; the limit is {limit}")
    if len(raw_nodes) > max_nodes or len(raw_edges) > max_edges:
        return None, errors
    parameters = _check_parameters(document.get("parameters", {}), report)
    nodes, blind = _check_nodes(raw_nodes, components, parameters, errors)
    edges = _check_edges(raw_edges, nodes, blind, errors)
    _check_required_inputs(nodes, blind, edges, errors)
    _check_cycle(nodes, edges, errors)
    if errors:
        return None, errors
    typed = {name: param for name, param in parameters.items() if param is not None}
    return Spec(typed, tuple(nodes.values()), tuple(edges)), []


def _encoding_problem(document: Any, max_bytes: int) -> str | None:
    try:
        size = len(json.dumps(document, allow_nan=False))
    except RecursionError:
        return f"the spec is nested more than {MAX_DEPTH} levels deep"
    except (TypeError, ValueError) as exc:
        return f"the spec is not a JSON document: {clip(str(exc))}"
    if size > max_bytes:
        return f"the spec is {size} bytes; the limit is {max_bytes} bytes"
    if _depth(document) > MAX_DEPTH:
        return f"the spec is nested more than {MAX_DEPTH} levels deep"
    return None


def _depth(value: Any) -> int:
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            todo.extend((child, depth + 1) for child in children)
    return deepest


def _list_at(document: dict[str, Any], key: str, report: Report) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        report(key, f"{key} must be a list")
        return []
    return value


def _check_parameters(raw: Any, report: Report) -> Parameters:
    """Parameters by name; None marks one whose type is unknown (references to it are not
    also reported as undefined)."""
    if not isinstance(raw, dict):
        report("parameters", "parameters must be an object like "
               '{"alpha": {"type": "float", "default": 0.5}}')
        return {}
    return {str(name): _check_parameter(str(name), value, report) for name, value in raw.items()}


def _check_parameter(name: str, definition: Any, report: Report) -> ParamDef | None:
    where = f"parameters.{name}"
    if not NAME.fullmatch(name):
        report(where, f"parameter name {show(name)} {NAME_RULE}")
    if not isinstance(definition, dict):
        report(where, 'a parameter must be an object like {"type": "float", "default": 0.5}')
        return None
    for key in definition:
        if key not in PARAM_KEYS:
            report(f"{where}.{key}", f"unknown field {show(key)}")
    ptype, description = definition.get("type"), definition.get("description", "")
    if ptype not in PARAM_TYPES:
        report(f"{where}.type", f"unknown parameter type {show(ptype)}; "
               f"the types are {', '.join(PARAM_TYPES)}")
        return None
    if not isinstance(description, str):
        report(f"{where}.description", "description must be a string")
    if "default" not in definition:
        return ParamDef(name, ptype, None, True, str(description))
    fits, default = as_type(ptype, definition["default"])
    if not fits:
        report(f"{where}.default", f"default {type_rule(ptype, definition['default'])}")
    return ParamDef(name, ptype, default, False, str(description))


def _check_nodes(raw_nodes: list[Any], components: Components, parameters: Parameters,
                 errors: list[SpecError]) -> tuple[dict[str, Node], set[str]]:
    """Nodes by id (the first of duplicates), and the ids whose ports are unknown ("blind"):
    edges that touch those are not checked against ports nobody knows."""
    nodes: dict[str, Node] = {}
    blind: set[str] = set()
    for i, raw in enumerate(raw_nodes):
        if not isinstance(raw, dict):
            errors.append(SpecError(None, f"nodes[{i}]", "a node must be an object"))
            continue
        node_id = raw.get("id")
        name = node_id if isinstance(node_id, str) and NODE_ID.fullmatch(node_id) else None

        # A node without a usable id is named by its place in the document instead.
        def report(field: str, message: str, name: str | None = name, i: int = i) -> None:
            errors.append(SpecError(name, field if name else f"nodes[{i}].{field}", message))

        if name is None:
            report("id", f"node id {show(node_id)} must start with a letter or _ and hold "
                   "only letters, digits, _ and - (at most 64)" if "id" in raw else
                   "a node needs an id")
        elif name in nodes:
            report("id", f"duplicate node id {name}; node ids must be unique")
        node, ports_known = _check_node(raw, components, parameters, report)
        if name is not None and name not in nodes:
            nodes[name] = node
            if not ports_known:
                blind.add(name)
    return nodes, blind


def _check_node(raw: dict[str, Any], components: Components, parameters: Parameters,
                report: Report) -> tuple[Node, bool]:
    for key in raw:
        if key not in NODE_KEYS:
            report(str(key), f"unknown field {show(key)}")
    component = _check_component(raw.get("component"), components, report)
    options = {key: _check_option(raw, key, report) for key in _OPTIONS}
    options["secrets"] = tuple(options["secrets"])
    params = _check_params(raw.get("params", {}), component, parameters, report)
    inputs, outputs, ports_known = _check_ports(raw, component, report)
    node = Node(id=str(raw.get("id")), component=str(raw.get("component")), params=params,
                inputs=inputs, outputs=outputs, declares_ports="ports" in raw, **options)
    return node, ports_known


def _check_component(key: Any, components: Components, report: Report) -> ComponentDef | None:
    if not isinstance(key, str) or not COMPONENT_KEY.fullmatch(key):
        report("component", f"component {show(key)} must look like name@version, e.g. "
               "python-script@1" if key is not None else "a node needs a component")
        return None
    component = components.get(key)
    if component is None:
        name = key.rpartition("@")[0]
        versions = sorted(c.version for c in components.values() if c.name == name)
        known = ", ".join(str(v) for v in versions)
        report("component", f"unknown component version {key}; known versions: {known}"
               if versions else f"unknown component {key}")
    return component


def _int_between(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _is_env(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and ENV_NAME.fullmatch(k) and isinstance(v, str)
        for k, v in value.items())


def _is_secrets(value: Any) -> bool:
    names = value if isinstance(value, list) else [None]
    return all(isinstance(s, str) and ENV_NAME.fullmatch(s) for s in names) and len(
        set(names)) == len(names)


# Node options: default, test, and what a valid value looks like.
_OPTIONS: dict[str, tuple[Any, Callable[[Any], bool], str]] = {
    "compute": ("local", lambda v: isinstance(v, str) and COMPUTE.fullmatch(v) is not None,
                "must name a compute target, like local, cpu or gpu"),
    "allow_reuse": (True, lambda v: isinstance(v, bool), "must be true or false"),
    "retries": (0, _int_between(0, MAX_RETRIES), f"must be a whole number from 0 to {MAX_RETRIES}"),
    "timeout_s": (3600, _int_between(1, MAX_TIMEOUT_S),
                  f"must be a whole number of seconds from 1 to {MAX_TIMEOUT_S} (7 days)"),
    "continue_on_failure": (False, lambda v: isinstance(v, bool), "must be true or false"),
    "position": (None, lambda v: isinstance(v, dict) and set(v) == {"x", "y"} and all(
        as_type("float", v[axis])[0] for axis in "xy"),
        'must be an object like {"x": 40, "y": 80}'),
    "label": (None, lambda v: isinstance(v, str) and len(v) <= 200,
              "must be a string of at most 200 characters"),
    "env": ({}, _is_env, 'must map variable names (letters, digits and _, not starting with '
            'PIPELINES_) to strings, like {"MODE": "fast"}'),
    "secrets": ([], _is_secrets, 'must be a list of distinct secret names, like ["API_KEY"]'),
}


def _check_option(raw: dict[str, Any], key: str, report: Report) -> Any:
    default, valid, rule = _OPTIONS[key]
    if key in raw and not valid(raw[key]):
        report(key, f"{key} {rule}, not {show(raw[key])}")
    return copy.deepcopy(raw[key] if key in raw and valid(raw[key]) else default)


def _check_params(raw: Any, component: ComponentDef | None, parameters: Parameters,
                  report: Report) -> dict[str, Any]:
    if not isinstance(raw, dict):
        report("params", "params must be an object")
        return {}
    # Validate a probe in which each whole-string reference holds a sample of its parameter's
    # type: the schema then judges the type the step will receive, not the "${...}" text.
    problems: list[tuple[Path, str]] = []
    references: dict[Path, ParamDef | None] = {}
    probe = _probe(raw, (), parameters, references, problems)
    validator = jsonschema.Draft202012Validator(component.params_schema if component else {})
    for error in validator.iter_errors(probe):
        path = tuple(error.absolute_path)
        if path not in references:
            problems.append((path, _schema_message(error)))
        elif (param := references[path]) is not None and error.validator == "type":
            problems.append((path, f"parameter ${{{param.name}}} is {param.type}, but "
                             f"{_params_field(path)} must be of type "
                             f"{show(error.validator_value)}"))
    indexes: dict[int, dict[Any, int]] = {}
    for path, message in sorted(problems, key=lambda item: _place(raw, item[0], indexes)):
        report(_params_field(path), message)
    return copy.deepcopy(raw)


def _place(value: Any, path: Path, indexes: dict[int, dict[Any, int]]) -> tuple[int, ...]:
    """Where `path` lies in document order, for sorting errors found in another order.
    `indexes` caches each object's key positions, so sorting many errors stays linear."""
    place = []
    for part in path:
        if isinstance(value, dict):
            if id(value) not in indexes:
                indexes[id(value)] = {key: i for i, key in enumerate(value)}
            place.append(indexes[id(value)][part])
        else:
            place.append(part)
        value = value[part]
    return tuple(place)


_SAMPLES: dict[str, Any] = {"int": 0, "float": 0.5, "string": "", "bool": False}


def _probe(value: Any, path: Path, parameters: Parameters,
           references: dict[Path, ParamDef | None], problems: list[tuple[Path, str]]) -> Any:
    """Copy `value` with whole references replaced by samples. Record in `references` each
    path whose string holds a reference: the parameter for a typed whole reference, else None
    (text the schema cannot judge before the run)."""
    if isinstance(value, dict):
        return {k: _probe(v, (*path, k), parameters, references, problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_probe(v, (*path, i), parameters, references, problems)
                for i, v in enumerate(value)]
    names = [m.group(1) for m in REFERENCE.finditer(value)] if isinstance(value, str) else []
    if not any(names):
        return value
    problems.extend((path, f"parameter ${{{name}}} is not defined in the pipeline's parameters")
                    for name in dict.fromkeys(n for n in names if n and n not in parameters))
    whole = whole_reference(value)
    param = references[path] = parameters.get(whole) if whole is not None else None
    return _SAMPLES[param.type] if param is not None else value


def _params_field(path: Path) -> str:
    return "params" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _schema_message(error: jsonschema.ValidationError) -> str:
    # For oneOf/anyOf jsonschema repeats the whole instance; say what was expected instead.
    if error.validator in ("oneOf", "anyOf"):
        if not error.context:
            return "matches more than one of the allowed forms; exactly one may apply"
        options = dict.fromkeys(clip(sub.message) for sub in error.context)
        return "does not match any allowed form: " + "; or ".join(options)
    return clip(error.message)


def _check_ports(raw: dict[str, Any], component: ComponentDef | None,
                 report: Report) -> tuple[tuple[Port, ...], tuple[Port, ...], bool]:
    """The node's inputs and outputs, and whether they are known."""
    if "ports" not in raw:
        return (component.inputs, component.outputs, True) if component else ((), (), False)
    found = _parse_ports(raw["ports"], report)
    if component is not None and not component.dynamic_ports:
        report("ports", f"component {component.key} has fixed ports; its nodes cannot declare "
               "ports")
        return component.inputs, component.outputs, True
    inputs, outputs = found.get("inputs"), found.get("outputs")
    known = component is not None and inputs is not None and outputs is not None
    return inputs or (), outputs or (), known


def _parse_ports(raw: Any, report: Report) -> dict[str, tuple[Port, ...] | None]:
    """Ports by kind; None for a kind whose list has a bad port."""
    if not isinstance(raw, dict) or set(raw) - {"inputs", "outputs"}:
        report("ports", 'ports must be an object like {"inputs": [...], "outputs": [...]}')
        return {}
    found: dict[str, tuple[Port, ...] | None] = {}
    for kind in ("inputs", "outputs"):
        items = raw.get(kind, [])
        if not isinstance(items, list):
            report(f"ports.{kind}", f"ports.{kind} must be a list of ports")
            found[kind] = None
            continue
        ports: dict[str, Port] = {}
        for j, item in enumerate(items):
            problem = _port_problem(item, ports)
            if problem:
                report(f"ports.{kind}[{j}]{problem[0]}", problem[1])
            else:
                ports[item["name"]] = Port.from_dict(item)
        found[kind] = tuple(ports.values()) if len(ports) == len(items) else None
    return found


def _port_problem(item: Any, seen: Mapping[str, Port]) -> tuple[str, str] | None:
    """(field suffix, message) for the first thing wrong with a port definition."""
    if not isinstance(item, dict) or set(item) - set(PORT_KEYS):
        return "", ('a port must be an object with name and optionally type, optional and '
                    'description, like {"name": "data", "type": "table"}')
    name, ptype = item.get("name"), item.get("type", "any")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return ".name", f"port name {show(name)} {NAME_RULE}"
    if name in seen:
        return ".name", f"duplicate port name {name}"
    if not isinstance(ptype, str) or ptype not in PORT_TYPES:
        return ".type", f"unknown port type {show(ptype)}; the types are {', '.join(PORT_TYPES)}"
    if not isinstance(item.get("optional", False), bool):
        return ".optional", "optional must be true or false"
    if not isinstance(item.get("description", ""), str):
        return ".description", "description must be a string"
    return None


def _check_edges(raw_edges: list[Any], nodes: dict[str, Node], blind: set[str],
                 errors: list[SpecError]) -> list[Edge]:
    """Every edge whose two ends parse, whether or not they exist (later checks filter)."""
    edges: list[Edge] = []
    fed: dict[tuple[str, str], int] = {}  # (node, input) -> index of the edge that feeds it
    for i, raw in enumerate(raw_edges):
        where, edge = f"edges[{i}]", _parse_edge(raw, f"edges[{i}]", errors)
        if edge is None:
            continue
        source = _find_port(edge.from_node, edge.from_port, "output", nodes, blind, errors,
                            f"{where}.from")
        target = _find_port(edge.to_node, edge.to_port, "input", nodes, blind, errors,
                            f"{where}.to")
        start, end = f"{edge.from_node}.{edge.from_port}", f"{edge.to_node}.{edge.to_port}"
        if edge.from_node == edge.to_node:
            errors.append(SpecError(edge.to_node, where, f"node {edge.to_node} cannot feed "
                                    "itself"))
        elif source and target and source.type != target.type and "any" not in (
                source.type, target.type):
            errors.append(SpecError(edge.to_node, where, f"port {start} ({source.type}) "
                                    f"cannot feed {end} ({target.type})"))
        key = (edge.to_node, edge.to_port)
        if key in fed:
            errors.append(SpecError(edge.to_node, f"{where}.to", f"input {end} already has an "
                                    f"edge (edges[{fed[key]}]); an input takes one edge"))
        elif edge.to_node in nodes:
            fed[key] = i
        edges.append(edge)
    return edges


def _parse_edge(raw: Any, where: str, errors: list[SpecError]) -> Edge | None:
    if not isinstance(raw, dict):
        errors.append(SpecError(None, where, 'an edge must be an object like '
                                '{"from": "prep.train_data", "to": "train.data"}'))
        return None
    errors.extend(SpecError(None, f"{where}.{key}", f"unknown field {show(key)}; an edge has "
                            "from and to") for key in raw if key not in ("from", "to"))
    ends: list[str] = []
    for side in ("from", "to"):
        value = raw.get(side)
        node, dot, port = value.partition(".") if isinstance(value, str) else ("", "", "")
        if dot and NODE_ID.fullmatch(node) and NAME.fullmatch(port):
            ends += [node, port]
        else:
            errors.append(SpecError(None, f"{where}.{side}", f"{side} must look like node.port, "
                                    f"e.g. prep.train_data, not {show(value)}"))
    return Edge(*ends) if len(ends) == 4 else None


def _find_port(node_id: str, port: str, kind: str, nodes: dict[str, Node], blind: set[str],
               errors: list[SpecError], where: str) -> Port | None:
    node = nodes.get(node_id)
    if node is None:
        errors.append(SpecError(None, where, f"unknown node {node_id}"))
        return None
    ports = node.outputs if kind == "output" else node.inputs
    found = next((p for p in ports if p.name == port), None)
    if found is None and node_id not in blind:
        names = ", ".join(p.name for p in ports) or "none"
        errors.append(SpecError(node_id, where, f"node {node_id} has no {kind} port {port}; "
                                f"its {kind}s: {names}"))
    return found


def _check_required_inputs(nodes: dict[str, Node], blind: set[str], edges: list[Edge],
                           errors: list[SpecError]) -> None:
    fed = {(edge.to_node, edge.to_port) for edge in edges}
    for node in nodes.values():
        for port in node.inputs if node.id not in blind else ():
            if not port.optional and (node.id, port.name) not in fed:
                errors.append(SpecError(node.id, f"inputs.{port.name}", f"required input "
                                        f"{node.id}.{port.name} has no edge into it"))


def _check_cycle(nodes: dict[str, Node], edges: list[Edge], errors: list[SpecError]) -> None:
    links = [(e.from_node, e.to_node) for e in edges
             if e.from_node in nodes and e.to_node in nodes and e.from_node != e.to_node]
    cycle = graph.find_cycle(list(nodes), links)
    if cycle:
        message = f"the graph has a cycle: {graph.format_cycle(cycle)}"
        errors.append(SpecError(cycle[0], None, message))
