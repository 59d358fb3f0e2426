"""The registry of built-in components, their documentation, and the documented example
pipeline run step by step through the executor."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from runner.components import BUILTINS, PORT_TYPES
from runner.spec import resolve_params
from runner.spec_validation import validate_spec

if TYPE_CHECKING:
    from conftest import Step

DOCS = Path(__file__).resolve().parents[4] / "docs" / "components.md"
# Parameter names the executor (script, arguments) and the server (code, source) act on.
RESERVED = {"script", "arguments", "code", "source"}


def documented_json() -> list[dict[str, Any]]:
    return [json.loads(block) for block in
            re.findall(r"```json\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)]


@pytest.mark.parametrize("key", [k for k in BUILTINS if k != "python-script@1"])
def test_each_builtin_has_a_usable_schema_typed_ports_and_its_files(key: str) -> None:
    component = BUILTINS[key]
    schema = component.params_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False and not RESERVED & set(schema["properties"])
    for name, prop in schema["properties"].items():
        assert prop.get("title"), f"{name} needs a title for the editor's form"
        jsonschema.validate(prop["default"], prop)
    assert all(port.type in PORT_TYPES for port in (*component.inputs, *component.outputs))
    assert set(component.files) == {"main.py", "steplib.py", "params_schema.json"}
    assert json.loads(component.files["params_schema.json"]) == schema


def test_every_builtin_is_documented_with_a_valid_example_node() -> None:
    nodes = {block["component"]: block for block in documented_json() if "component" in block}
    assert set(nodes) == set(BUILTINS)
    for key, node in nodes.items():
        _, errors = validate_spec({"nodes": [node], "edges": []}, BUILTINS)
        problems = [e for e in errors if not e.message.startswith("required input")]
        assert not problems, (key, problems)


@pytest.mark.slow
def test_the_documented_example_pipeline_runs_green(step: Step) -> None:
    [document] = [block for block in documented_json() if "nodes" in block]
    spec, errors = validate_spec(document, BUILTINS)
    assert spec is not None, errors
    values = {name: p.default for name, p in spec.parameters.items()}
    values["automl_budget_s"] = 3  # a short search; the machine is small
    outputs: dict[str, dict[str, Any]] = {}
    for node in spec.nodes:  # the documented order is a topological one
        inputs = {port: outputs[source][out]
                  for port, (source, out) in spec.inputs_of(node.id).items()}
        result, _ = step.ok(node.component, resolve_params(node, values), inputs)
        outputs[node.id] = result.outputs
    scores = {name: json.loads((step.fetch(outputs[name]["metrics"]) / "metrics.json")
                               .read_text())["metrics"]
              for name in ("evaluate_automl", "evaluate_ridge")}
    assert all(s["r2"] > 0.2 for s in scores.values()), scores
    comparison = json.loads((step.fetch(outputs["compare"]["comparison"])
                             / "comparison.json").read_text())
    better = min(scores, key=lambda name: scores[name]["rmse"])
    assert comparison["best"] == {"evaluate_automl": "a", "evaluate_ridge": "b"}[better]
    predictions = step.read_table(outputs["score"]["predictions"])
    assert len(predictions) == len(step.read_table(outputs["split"]["test"])) == 89
