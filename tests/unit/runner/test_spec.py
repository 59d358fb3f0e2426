from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.components import BUILTINS, PORT_TYPES, ComponentDef, Port
from runner.graph import downstream
from runner.spec import (
    NODE_KEYS,
    PARAM_TYPES,
    TOP_KEYS,
    Edge,
    SpecError,
    check_run_parameters,
    resolve_params,
)
from runner.spec_validation import validate_spec

TRAIN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "alpha": {"type": "number", "minimum": 0},
        "epochs": {"type": "integer"},
        "layers": {"type": "array", "items": {"type": "integer"}},
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "flag": {"type": "boolean"},
    },
}


def _train(version: int) -> ComponentDef:
    return ComponentDef(name="train", version=version, title="Train", category="ML",
                        description="", inputs=(Port("data", "table"),),
                        outputs=(Port("model", "model"),), params_schema=TRAIN_SCHEMA)


EVALUATE = ComponentDef(
    name="evaluate", version=1, title="Evaluate", category="ML", description="",
    inputs=(Port("model", "model"), Port("data", "table"), Port("baseline", "model", True)),
    outputs=(Port("report", "json"),),
)
COMPONENTS = {**BUILTINS, **{c.key: c for c in (_train(1), _train(2), EVALUATE)}}


def script(node_id: Any, inputs: Any = (), outputs: Any = (), **fields: Any) -> dict[str, Any]:
    """A python-script node; ports are given as "name:type" or "name:type?" (optional)."""
    def port(text: str) -> dict[str, Any]:
        name, _, ptype = text.partition(":")
        return {"name": name, "type": ptype.rstrip("?") or "any", "optional": text.endswith("?")}

    return {"id": node_id, "component": "python-script@1", "params": {"code": "print(1)"},
            "ports": {"inputs": [port(p) for p in inputs], "outputs": [port(p) for p in outputs]},
            **fields}


def edge(source: str, target: str) -> dict[str, str]:
    return {"from": source, "to": target}


def diamond() -> dict[str, Any]:
    return {
        "parameters": {"alpha": {"type": "float", "default": 0.5, "description": "rate"},
                       "epochs": {"type": "int"}},
        "nodes": [
            script("prep", outputs=["train_data:table", "test_data:table"],
                   position={"x": 40, "y": 80}, label="Prepare"),
            {"id": "train", "component": "train@2", "compute": "gpu",
             "params": {"alpha": "${alpha}", "epochs": "${epochs}"}},
            script("baseline", inputs=["data:any"], outputs=["model:model"], retries=2,
                   env={"MODE": "fast"}, secrets=["API_KEY"]),
            {"id": "evaluate", "component": "evaluate@1", "continue_on_failure": True},
        ],
        "edges": [
            edge("prep.train_data", "train.data"),
            edge("prep.train_data", "baseline.data"),
            edge("train.model", "evaluate.model"),
            edge("baseline.model", "evaluate.baseline"),
            edge("prep.test_data", "evaluate.data"),
        ],
    }


def errors_of(document: Any, **limits: Any) -> list[tuple[str | None, str | None, str]]:
    spec, errors = validate_spec(document, COMPONENTS, **limits)
    assert spec is None and errors
    return [(e.node, e.field, e.message) for e in errors]


def where(document: Any, **limits: Any) -> list[tuple[str | None, str | None]]:
    return [(node, field) for node, field, _ in errors_of(document, **limits)]


def with_nodes(*nodes: Any, edges: Any = (), parameters: Any = None) -> dict[str, Any]:
    return {"parameters": parameters or {}, "nodes": list(nodes), "edges": list(edges)}


# --- A valid spec --------------------------------------------------------------------------


def test_a_valid_diamond_spec_passes_and_round_trips() -> None:
    spec, errors = validate_spec(diamond(), COMPONENTS)
    assert errors == [] and spec is not None
    assert [n.id for n in spec.nodes] == ["prep", "train", "baseline", "evaluate"]
    assert spec.parents() == {"prep": [], "train": ["prep"], "baseline": ["prep"],
                              "evaluate": ["train", "baseline", "prep"]}
    assert spec.inputs_of("evaluate") == {"model": ("train", "model"),
                                          "baseline": ("baseline", "model"),
                                          "data": ("prep", "test_data")}
    assert spec.edges[0] == Edge("prep", "train_data", "train", "data")
    assert spec.node("train").inputs == (Port("data", "table"),)
    assert [p.name for p in spec.node("prep").outputs] == ["train_data", "test_data"]
    assert spec.parameters["epochs"].required and not spec.parameters["alpha"].required

    normalized = json.loads(json.dumps(spec.to_dict()))
    again, errors = validate_spec(normalized, COMPONENTS)
    assert errors == [] and again == spec
    assert again.to_dict() == normalized


def test_it_fills_the_documented_defaults() -> None:
    spec, _ = validate_spec(diamond(), COMPONENTS)
    assert spec is not None
    train = spec.node("train")
    assert (train.compute, train.allow_reuse, train.retries, train.timeout_s) == ("gpu", True,
                                                                                  0, 3600)
    assert (train.continue_on_failure, train.env, train.secrets) == (False, {}, ())
    assert (train.position, train.label, train.declares_ports) == (None, None, False)
    prep = spec.node("prep")
    assert (prep.compute, prep.position, prep.label) == ("local", {"x": 40, "y": 80}, "Prepare")
    assert spec.node("baseline").secrets == ("API_KEY",)


def test_an_empty_spec_is_valid() -> None:
    spec, errors = validate_spec({}, COMPONENTS)
    assert errors == [] and spec is not None and spec.nodes == ()


def test_the_spec_does_not_share_mutable_values_with_the_document() -> None:
    document = diamond()
    spec, _ = validate_spec(document, COMPONENTS)
    document["nodes"][1]["params"]["alpha"] = 99
    assert spec is not None and spec.node("train").params["alpha"] == "${alpha}"


def test_an_error_serializes_to_node_field_and_message() -> None:
    error = SpecError("train", "retries", "retries must be a whole number from 0 to 10")
    assert error.to_dict() == {"node": "train", "field": "retries",
                               "message": "retries must be a whole number from 0 to 10"}


# --- The document as a whole ---------------------------------------------------------------


@pytest.mark.parametrize("document", [None, [], "spec", 3, 2.5, True])
def test_it_rejects_a_document_that_is_not_an_object(document: Any) -> None:
    assert errors_of(document) == [(None, None, "the spec must be a JSON object")]


@pytest.mark.parametrize("document", [{"x": {1, 2}}, {"x": math.nan}, {"x": math.inf},
                                      {"x": object()}])
def test_it_rejects_values_json_cannot_hold(document: Any) -> None:
    [(node, field, message)] = errors_of(document)
    assert (node, field) == (None, None) and message.startswith("the spec is not a JSON document")


def test_it_rejects_deep_and_circular_documents_without_raising() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    assert "nested more than 64 levels" in errors_of({"nodes": deep})[0][2]
    shallow_enough_for_json: Any = "x"
    for _ in range(100):
        shallow_enough_for_json = {"k": shallow_enough_for_json}
    assert "nested more than 64 levels" in errors_of(shallow_enough_for_json)[0][2]
    loop: dict[str, Any] = {}
    loop["nodes"] = [loop]
    assert errors_of(loop)[0][2].startswith("the spec is not a JSON document")


def test_it_reports_the_size_of_an_oversized_document() -> None:
    document = diamond()
    size = len(json.dumps(document))
    assert errors_of(document, max_bytes=100) == [
        (None, None, f"the spec is {size} bytes; the limit is 100 bytes")]


def test_it_reports_unknown_top_level_fields_and_wrong_section_types() -> None:
    assert errors_of({"nodes": {}, "edges": "x", "parameters": [], "version": 2}) == [
        (None, "version", 'unknown field "version"; a spec has parameters, nodes, edges'),
        (None, "nodes", "nodes must be a list"),
        (None, "edges", "edges must be a list"),
        (None, "parameters", 'parameters must be an object like '
                             '{"alpha": {"type": "float", "default": 0.5}}'),
    ]


def test_it_reports_node_and_edge_counts_over_the_limits() -> None:
    document = {"nodes": [script(f"n{i}") for i in range(11)], "edges": [{}] * 6}
    assert errors_of(document, max_nodes=10, max_edges=5) == [
        (None, "nodes", "the spec has 11 nodes; the limit is 10"),
        (None, "edges", "the spec has 6 edges; the limit is 5"),
    ]


# --- Nodes ---------------------------------------------------------------------------------


def test_it_reports_missing_invalid_and_duplicate_node_ids() -> None:
    document = with_nodes(
        "prep", {"component": "python-script@1", "params": {"code": ""}},
        script("1bad"), script("a.b"), script(7), script("prep"), script("prep"))
    assert where(document) == [(None, "nodes[0]"), (None, "nodes[1].id"), (None, "nodes[2].id"),
                               (None, "nodes[3].id"), (None, "nodes[4].id"), ("prep", "id")]
    assert errors_of(document)[-1][2] == "duplicate node id prep; node ids must be unique"


def test_it_names_the_position_of_a_node_without_a_usable_id_in_every_field() -> None:
    node = script("no good", retries=99)
    assert where(with_nodes(node)) == [(None, "nodes[0].id"), (None, "nodes[0].retries")]


def test_it_lists_the_known_versions_of_an_unknown_component_version() -> None:
    document = with_nodes({"id": "t", "component": "train@3"}, {"id": "u", "component": "nope@1"})
    assert errors_of(document) == [
        ("t", "component", "unknown component version train@3; known versions: 1, 2"),
        ("u", "component", "unknown component nope@1"),
    ]


@pytest.mark.parametrize("key", ["train", "Train@1", "train@v1", "@1", 5, None, ["train@1"]])
def test_it_reports_a_component_key_of_the_wrong_form(key: Any) -> None:
    [(node, field, message)] = errors_of(with_nodes({"id": "t", "component": key}))
    assert (node, field) == ("t", "component")
    assert "name@version" in message or message == "a node needs a component"


def test_it_reports_unknown_node_fields() -> None:
    assert errors_of(with_nodes(script("a", colour="red"))) == [
        ("a", "colour", 'unknown field "colour"')]


@pytest.mark.parametrize(("field", "value"), [
    ("retries", -1), ("retries", 11), ("retries", True), ("retries", "1"), ("retries", 1.0),
    ("timeout_s", 0), ("timeout_s", 7 * 24 * 3600 + 1), ("timeout_s", None),
    ("allow_reuse", "yes"), ("allow_reuse", 1), ("continue_on_failure", None),
    ("compute", 5), ("compute", ""), ("compute", "a b"),
    ("position", {"x": 1}), ("position", {"x": 1, "y": "2"}), ("position", [1, 2]),
    ("label", 5), ("label", "x" * 201),
    ("env", []), ("env", {"A": 1}), ("env", {"a b": "x"}), ("env", {"PIPELINES_RUN": "x"}),
    ("secrets", "API_KEY"), ("secrets", ["a b"]), ("secrets", ["A", "A"]), ("secrets", [1]),
])
def test_it_reports_node_options_of_the_wrong_type_or_range(field: str, value: Any) -> None:
    [(node, reported, message)] = errors_of(with_nodes(script("a", **{field: value})))
    assert (node, reported) == ("a", field) and message.startswith(f"{field} must")


@pytest.mark.parametrize(("field", "value"), [
    ("retries", 10), ("timeout_s", 7 * 24 * 3600), ("compute", "gpu-a100.large"),
    ("position", {"x": -1.5, "y": 0}), ("env", {"_X1": ""}), ("secrets", [])])
def test_it_accepts_node_options_at_the_edges_of_their_range(field: str, value: Any) -> None:
    spec, errors = validate_spec(with_nodes(script("a", **{field: value})), COMPONENTS)
    assert errors == [] and spec is not None


# --- Params against the component's schema, and references --------------------------------


def test_it_maps_schema_errors_to_params_fields() -> None:
    node = {"id": "t", "component": "train@1", "params": {
        "alpha": -1, "epochs": "ten", "layers": [1, "two"], "extra": 1}}
    document = with_nodes(script("p", outputs=["d:table"]), node, edges=[edge("p.d", "t.data")])
    fields = {field for _, field in where(document)}
    assert fields == {"params", "params.alpha", "params.epochs", "params.layers[1]"}


def test_it_explains_which_forms_a_oneof_schema_allows() -> None:
    [(_, field, message)] = errors_of(with_nodes(script("a", params={})))
    assert field == "params"
    assert "'code' is a required property" in message and "'source'" in message


def test_it_reports_references_to_undefined_parameters_wherever_they_are() -> None:
    params = {"code": "print('${beta}')", "arguments": ["--x", "${gamma}"],
              "nested": {"deep": ["a ${beta} b ${delta}"]}, "fine": "${alpha}"}
    document = with_nodes(script("a", params=params),
                          parameters={"alpha": {"type": "string", "default": "x"}})
    assert errors_of(document) == [
        ("a", "params.code", "parameter ${beta} is not defined in the pipeline's parameters"),
        ("a", "params.arguments[1]",
         "parameter ${gamma} is not defined in the pipeline's parameters"),
        ("a", "params.nested.deep[0]",
         "parameter ${beta} is not defined in the pipeline's parameters"),
        ("a", "params.nested.deep[0]",
         "parameter ${delta} is not defined in the pipeline's parameters"),
    ]


def test_it_checks_references_when_the_component_is_unknown() -> None:
    document = with_nodes({"id": "a", "component": "gone@1", "params": {"x": "${nope}"}})
    assert where(document) == [("a", "component"), ("a", "params.x")]


def test_references_stand_in_for_values_of_the_schema_type() -> None:
    parameters = {"rate": {"type": "float"}, "count": {"type": "int", "default": 3},
                  "word": {"type": "string"}, "on": {"type": "bool"}}
    node = {"id": "t", "component": "train@1", "params": {
        "alpha": "${count}", "epochs": "${count}", "layers": ["${count}"], "name": "${word}",
        "flag": "${on}"}}
    document = with_nodes(script("p", outputs=["d:table"]), node, edges=[edge("p.d", "t.data")],
                          parameters=parameters)
    spec, errors = validate_spec(document, COMPONENTS)
    assert errors == [] and spec is not None


def test_it_reports_a_reference_whose_parameter_type_does_not_fit_the_schema() -> None:
    parameters = {"rate": {"type": "float"}, "on": {"type": "bool"}, "word": {"type": "string"}}
    node = {"id": "t", "component": "train@1",
            "params": {"epochs": "${rate}", "alpha": "${on}", "flag": "${word}"}}
    document = with_nodes(script("p", outputs=["d:table"]), node, edges=[edge("p.d", "t.data")],
                          parameters=parameters)
    assert errors_of(document) == [
        ("t", "params.epochs", 'parameter ${rate} is float, but params.epochs must be of type '
                               '"integer"'),
        ("t", "params.alpha", 'parameter ${on} is bool, but params.alpha must be of type '
                              '"number"'),
        ("t", "params.flag", 'parameter ${word} is string, but params.flag must be of type '
                             '"boolean"'),
    ]


def test_an_embedded_reference_is_not_judged_by_the_schema_pattern() -> None:
    node = {"id": "t", "component": "train@1", "params": {"name": "abc${word}"}}
    document = with_nodes(script("p", outputs=["d:table"]), node, edges=[edge("p.d", "t.data")],
                          parameters={"word": {"type": "string", "default": "x"}})
    assert validate_spec(document, COMPONENTS)[1] == []


def test_an_escaped_reference_is_plain_text() -> None:
    document = with_nodes(script("a", params={"code": "echo $${HOME} ${ not a ref }"}))
    assert validate_spec(document, COMPONENTS)[1] == []


# --- Ports ---------------------------------------------------------------------------------


def test_it_rejects_ports_on_a_component_with_fixed_ports() -> None:
    node = {"id": "t", "component": "train@1", "ports": {"inputs": [], "outputs": []}}
    assert errors_of(with_nodes(node)) == [
        ("t", "ports", "component train@1 has fixed ports; its nodes cannot declare ports"),
        # The component's own ports still apply, so the unfed input is reported as well.
        ("t", "inputs.data", "required input t.data has no edge into it"),
    ]


@pytest.mark.parametrize(("ports", "field"), [
    ([], "ports"),
    ({"inputs": [], "extra": []}, "ports"),
    ({"inputs": {}}, "ports.inputs"),
    ({"inputs": ["data"]}, "ports.inputs[0]"),
    ({"inputs": [{"name": "data", "colour": "red"}]}, "ports.inputs[0]"),
    ({"outputs": [{"name": "1st"}]}, "ports.outputs[0].name"),
    ({"outputs": [{"type": "table"}]}, "ports.outputs[0].name"),
    ({"outputs": [{"name": "m"}, {"name": "m"}]}, "ports.outputs[1].name"),
    ({"outputs": [{"name": "m", "type": "blob"}]}, "ports.outputs[0].type"),
    ({"outputs": [{"name": "m", "type": ["table"]}]}, "ports.outputs[0].type"),
    ({"inputs": [{"name": "d", "optional": "no"}]}, "ports.inputs[0].optional"),
    ({"inputs": [{"name": "d", "description": 1}]}, "ports.inputs[0].description"),
])
def test_it_reports_bad_port_definitions(ports: Any, field: str) -> None:
    node = {"id": "a", "component": "python-script@1", "params": {"code": ""}, "ports": ports}
    assert where(with_nodes(node)) == [("a", field)]


def test_the_message_for_an_unknown_port_type_lists_the_port_types() -> None:
    node = script("a", outputs=["m:blob"])
    [(_, _, message)] = errors_of(with_nodes(node))
    assert message == f'unknown port type "blob"; the types are {", ".join(PORT_TYPES)}'


def test_edges_to_a_node_with_unknown_ports_are_not_checked_against_ports() -> None:
    document = with_nodes(script("a", outputs=["m:model"]),
                          {"id": "b", "component": "gone@1"},
                          edges=[edge("a.m", "b.whatever")])
    assert where(document) == [("b", "component")]


# --- Edges ---------------------------------------------------------------------------------


def two_scripts(*edges: Any) -> dict[str, Any]:
    return with_nodes(script("a", inputs=["i:table?"], outputs=["t:table", "m:model", "x:any"]),
                      script("b", inputs=["t:table?", "m:model?", "y:any?"]), edges=edges)


@pytest.mark.parametrize(("raw", "expected"), [
    ("a.t->b.t", [(None, "edges[0]", 'an edge must be an object like '
                                     '{"from": "prep.train_data", "to": "train.data"}')]),
    ({"from": "a.t", "to": "b.t", "label": "x"},
     [(None, "edges[0].label", 'unknown field "label"; an edge has from and to')]),
    ({"from": "a", "to": "b.t"},
     [(None, "edges[0].from", 'from must look like node.port, e.g. prep.train_data, not "a"')]),
    ({"from": "a.t.u", "to": 5},
     [(None, "edges[0].from", 'from must look like node.port, e.g. prep.train_data, '
                              'not "a.t.u"'),
      (None, "edges[0].to", "to must look like node.port, e.g. prep.train_data, not 5")]),
    ({"from": "z.t", "to": "b.t"}, [(None, "edges[0].from", "unknown node z")]),
    ({"from": "a.nope", "to": "b.t"},
     [("a", "edges[0].from", "node a has no output port nope; its outputs: t, m, x")]),
    ({"from": "a.t", "to": "b.nope"},
     [("b", "edges[0].to", "node b has no input port nope; its inputs: t, m, y")]),
    ({"from": "a.t", "to": "a.i"}, [("a", "edges[0]", "node a cannot feed itself")]),
    ({"from": "a.t", "to": "b.m"},
     [("b", "edges[0]", "port a.t (table) cannot feed b.m (model)")]),
])
def test_it_reports_each_kind_of_bad_edge(raw: Any, expected: list[Any]) -> None:
    assert errors_of(two_scripts(raw)) == expected


def test_any_fits_every_port_type_on_both_sides() -> None:
    document = two_scripts(edge("a.x", "b.t"), edge("a.m", "b.y"))
    assert validate_spec(document, COMPONENTS)[1] == []


def test_it_reports_two_edges_into_the_same_input() -> None:
    assert errors_of(two_scripts(edge("a.t", "b.t"), edge("a.x", "b.t"))) == [
        ("b", "edges[1].to", "input b.t already has an edge (edges[0]); an input takes one edge")]


def test_it_reports_required_inputs_without_an_edge() -> None:
    document = with_nodes(script("p", outputs=["d:table"]),
                          {"id": "e", "component": "evaluate@1"},
                          edges=[edge("p.d", "e.data")])
    assert errors_of(document) == [
        ("e", "inputs.model", "required input e.model has no edge into it")]


def test_it_names_the_cycle_once_starting_from_its_first_node() -> None:
    nodes = [script(n, inputs=["i:any?"], outputs=["o:any", "p:any"]) for n in "abcd"]
    edges = [edge("a.o", "b.i"), edge("b.o", "c.i"), edge("c.o", "a.i"), edge("c.p", "d.i")]
    assert errors_of(with_nodes(*nodes, edges=edges)) == [
        ("a", None, "the graph has a cycle: a -> b -> c -> a")]


# --- Pipeline parameters -------------------------------------------------------------------


@pytest.mark.parametrize(("parameters", "expected"), [
    ({"1x": {"type": "int"}}, ("parameters.1x", 'parameter name "1x" must start with')),
    ({"a": "int"}, ("parameters.a", "a parameter must be an object")),
    ({"a": {"type": "complex"}}, ("parameters.a.type", 'unknown parameter type "complex"')),
    ({"a": {}}, ("parameters.a.type", "unknown parameter type null")),
    ({"a": {"type": "int", "min": 0}}, ("parameters.a.min", 'unknown field "min"')),
    ({"a": {"type": "int", "description": 5}}, ("parameters.a.description", "description")),
    ({"a": {"type": "int", "default": True}}, ("parameters.a.default", "default must be a whole")),
    ({"a": {"type": "int", "default": 1.5}}, ("parameters.a.default", "default must be a whole")),
    ({"a": {"type": "float", "default": "1"}}, ("parameters.a.default", "default must be a num")),
    ({"a": {"type": "float", "default": False}}, ("parameters.a.default", "default must be a n")),
    ({"a": {"type": "float", "default": 10**400}}, ("parameters.a.default", "default must be")),
    ({"a": {"type": "string", "default": None}}, ("parameters.a.default", "default must be a s")),
    ({"a": {"type": "bool", "default": 0}}, ("parameters.a.default", "default must be true or")),
])
def test_it_reports_bad_parameter_definitions(parameters: Any, expected: Any) -> None:
    [(node, field, message)] = errors_of({"parameters": parameters})
    assert node is None and (field, message[: len(expected[1])]) == expected


def test_a_whole_number_default_of_a_float_parameter_becomes_a_float() -> None:
    spec, _ = validate_spec({"parameters": {"a": {"type": "float", "default": 1}}}, COMPONENTS)
    assert spec is not None and spec.parameters["a"].default == 1.0
    assert isinstance(spec.parameters["a"].default, float)


def test_a_reference_to_a_parameter_with_an_unknown_type_is_not_also_undefined() -> None:
    document = with_nodes(script("a", params={"code": "${x}"}),
                          parameters={"x": {"type": "complex"}})
    assert where(document) == [(None, "parameters.x.type")]


def test_errors_come_in_document_order() -> None:
    document = {
        "parameters": {"a": {"type": "nope"}},
        "nodes": [script("n1", retries=-1), script("n2", inputs=["i:table"], colour=1)],
        "edges": [edge("zz.o", "n2.q")],
        "extra": 1,
    }
    assert where(document) == [(None, "extra"), (None, "parameters.a.type"), ("n1", "retries"),
                               ("n2", "colour"), (None, "edges[0].from"), ("n2", "edges[0].to"),
                               ("n2", "inputs.i")]


# --- Properties (docs/reliability.md R14) ----------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def _assert_total(document: Any) -> None:
    before = copy.deepcopy(document) if _is_plain(document) else None
    spec, errors = validate_spec(document, COMPONENTS)
    assert (spec is None) == bool(errors)
    assert all(isinstance(e, SpecError) and e.message for e in errors)
    if before is not None:
        assert document == before or document != document  # untouched (NaN is not == itself)
    if spec is not None:
        # Accepted only as a real spec: an object with known sections that round-trips.
        assert isinstance(document, dict) and set(document) <= set(TOP_KEYS)
        assert len(spec.nodes) == len(document.get("nodes", []))
        assert validate_spec(json.loads(json.dumps(spec.to_dict())), COMPONENTS) == (spec, [])


def _is_plain(value: Any) -> bool:
    return isinstance(value, dict | list | str | int | float | bool) or value is None


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_never_raises_and_is_never_accepted_unless_valid(document: Any) -> None:
    _assert_total(document)


# Documents shaped like specs, with junk in every place, reach far deeper into the validator.
junk = json_values
port_shaped = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["data", "model", "o", "1x"]) | junk,
    "type": st.sampled_from(PORT_TYPES) | junk, "optional": st.booleans() | junk})
node_shaped = st.fixed_dictionaries({}, optional={
    "id": st.sampled_from(["a", "b", "c", "bad id"]) | junk,
    "component": st.sampled_from([*COMPONENTS, "train@9", "x@1"]) | junk,
    "params": st.dictionaries(st.sampled_from(["code", "alpha", "layers", "x"]),
                              st.sampled_from(["${p}", "a${q}", "$${p}", "${r}", 1, "x"]) | junk)
    | junk,
    "ports": st.fixed_dictionaries({}, optional={"inputs": st.lists(port_shaped | junk),
                                                 "outputs": st.lists(port_shaped | junk)}) | junk,
    **{key: junk for key in NODE_KEYS if key not in ("id", "component", "params", "ports")},
    "extra": junk,
})
spec_shaped = st.fixed_dictionaries({}, optional={
    "parameters": st.dictionaries(
        st.sampled_from(["p", "q", "1x"]),
        st.fixed_dictionaries({}, optional={"type": st.sampled_from(PARAM_TYPES) | junk,
                                            "default": junk}) | junk) | junk,
    "nodes": st.lists(node_shaped | junk, max_size=5) | junk,
    "edges": st.lists(st.fixed_dictionaries({}, optional={
        "from": st.sampled_from(["a.o", "b.model", "c.data", "a"]) | junk,
        "to": st.sampled_from(["b.data", "c.model", "a.o"]) | junk}) | junk, max_size=6) | junk,
})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(spec_shaped)
def test_spec_shaped_junk_never_raises(document: Any) -> None:
    _assert_total(document)


@st.composite
def valid_dags(draw: st.DrawFn) -> dict[str, Any]:
    """python-script nodes whose ports fit: edges only from a lower to a higher index, each
    into its own input port of the source's type or "any"; every node also has an optional
    input "loop" for the back edge a test may add."""
    count = draw(st.integers(min_value=1, max_value=8))
    types = [draw(st.sampled_from(PORT_TYPES)) for _ in range(count)]
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    nodes = []
    for j in range(count):
        inputs = [f"in{i}:{draw(st.sampled_from([types[i], 'any']))}" for i, k in chosen
                  if k == j] + ["loop:any?"]
        nodes.append(script(f"s{j}", inputs=inputs, outputs=[f"out:{types[j]}"],
                            position={"x": draw(st.integers(0, 999)), "y": 0}))
    return with_nodes(*draw(st.permutations(nodes)),
                      edges=[edge(f"s{i}.out", f"s{j}.in{i}") for i, j in chosen])


@settings(max_examples=100)
@given(valid_dags())
def test_random_dags_of_fitting_ports_are_accepted(document: dict[str, Any]) -> None:
    spec, errors = validate_spec(document, COMPONENTS)
    assert errors == [] and spec is not None
    assert len(spec.edges) == len(document["edges"])


@settings(max_examples=100)
@given(valid_dags(), st.data())
def test_the_same_dag_plus_a_back_edge_is_rejected_with_every_cycle_node_named(
    document: dict[str, Any], data: st.DataObject
) -> None:
    links = [(e["from"].split(".")[0], e["to"].split(".")[0]) for e in document["edges"]]
    reachable = [(low, high) for low, _ in links for high in downstream([low], links)
                 if high != low]
    if not reachable:
        return  # no path to close into a cycle
    low, high = data.draw(st.sampled_from(reachable))
    document["edges"].append(edge(f"{high}.out", f"{low}.loop"))
    [(node, field, message)] = errors_of(document)
    prefix = "the graph has a cycle: "
    assert message.startswith(prefix)
    named = message.removeprefix(prefix).split(" -> ")
    assert named[0] == named[-1] == node and field is None
    cycle = named[:-1]
    all_links = {*links, (high, low)}
    assert all((a, b) in all_links for a, b in zip(named, named[1:], strict=False))
    assert {low, high} <= set(cycle) and len(set(cycle)) == len(cycle)


# --- Run parameters and their substitution -------------------------------------------------


def spec_with(parameters: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
    spec, errors = validate_spec(
        with_nodes(script("a", params={"code": "", **(params or {})}), parameters=parameters),
        COMPONENTS)
    assert errors == [] and spec is not None
    return spec


def test_it_fills_defaults_and_types_the_run_parameters() -> None:
    spec = spec_with({"alpha": {"type": "float", "default": 0.5}, "n": {"type": "int"},
                      "name": {"type": "string", "default": "x"}, "on": {"type": "bool"}})
    values, errors = check_run_parameters(spec, {"n": 3, "on": False, "alpha": 2})
    assert errors == []
    assert values == {"alpha": 2.0, "n": 3, "name": "x", "on": False}
    assert isinstance(values["alpha"], float)


def test_it_reports_unknown_wrongly_typed_and_missing_run_parameters() -> None:
    spec = spec_with({"n": {"type": "int"}, "on": {"type": "bool"}, "f": {"type": "float"}})
    values, errors = check_run_parameters(spec, {"n": True, "zeta": 1, "f": math.inf})
    assert [(e.node, e.field) for e in errors] == [
        (None, "parameters.n"), (None, "parameters.zeta"), (None, "parameters.f"),
        (None, "parameters.on")]
    assert errors[0].message == "must be a whole number (the parameter is int), not true"
    assert errors[1].message == "unknown parameter zeta; the pipeline's parameters: n, on, f"
    assert errors[3].message == "parameter on (bool) has no default and must be given"
    assert values == {}


def test_run_parameters_must_be_an_object() -> None:
    assert check_run_parameters(spec_with({}), ["x"])[1] == [  # type: ignore[arg-type]
        SpecError(None, "parameters", "run parameters must be an object")]


def test_it_substitutes_references_typed_embedded_nested_and_escaped() -> None:
    spec = spec_with({"alpha": {"type": "float"}, "n": {"type": "int"}, "w": {"type": "string"}},
                     {"rate": "${alpha}", "label": "n=${n}, w=${w}",
                      "args": ["--n", "${n}", {"deep": ["${w}"]}], "keep": "$${alpha} costs $5",
                      "fixed": 7, "not_a_ref": "${ alpha }"})
    resolved = resolve_params(spec.node("a"), {"alpha": 0.5, "n": 3, "w": "hi"})
    assert resolved == {"code": "", "rate": 0.5, "label": "n=3, w=hi",
                        "args": ["--n", 3, {"deep": ["hi"]}], "keep": "${alpha} costs $5",
                        "fixed": 7, "not_a_ref": "${ alpha }"}
    assert spec.node("a").params["rate"] == "${alpha}"  # the spec itself is left as it was


def test_it_raises_for_a_reference_without_a_value() -> None:
    spec = spec_with({"alpha": {"type": "float"}}, {"rate": "${alpha}"})
    with pytest.raises(KeyError, match="alpha"):
        resolve_params(spec.node("a"), {})
