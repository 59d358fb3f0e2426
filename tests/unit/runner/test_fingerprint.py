from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.components import BUILTINS
from runner.fingerprint import explain_changes, fingerprint, fingerprint_parts
from runner.spec import Spec, check_run_parameters, resolve_params
from runner.spec_validation import validate_spec

REPO = Path(__file__).resolve().parents[3]
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def parts(**changes: Any) -> dict[str, Any]:
    given_parts: dict[str, Any] = {
        "code_digest": "sha256:" + "c" * 64,
        "params": {"alpha": 0.5, "layers": [64, 32], "name": "résumé", "opts": {"b": 1, "a": 2}},
        "inputs": {"data": A, "labels": B},
        "environment": {"python": "3.11.7", "packages": "sha256:" + "d" * 64},
    }
    return fingerprint_parts(**{**given_parts, **changes})


def test_it_is_sha256_over_canonical_json() -> None:
    body = json.dumps(parts(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert fingerprint(parts()) == "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def test_parts_are_plain_json_values() -> None:
    result = parts(params={"shape": (2, 3)})
    assert result == {"code": "sha256:" + "c" * 64, "params": {"shape": [2, 3]},
                      "inputs": {"data": A, "labels": B},
                      "environment": {"python": "3.11.7", "packages": "sha256:" + "d" * 64}}
    assert fingerprint(result) == fingerprint(parts(params={"shape": [2, 3]}))


def test_the_order_of_keys_does_not_matter() -> None:
    reordered = parts(params={"opts": {"a": 2, "b": 1}, "name": "résumé", "layers": [64, 32],
                              "alpha": 0.5},
                      inputs={"labels": B, "data": A})
    assert fingerprint(reordered) == fingerprint(parts())


def test_each_part_changes_the_fingerprint() -> None:
    base = fingerprint(parts())
    assert fingerprint(parts(code_digest="sha256:" + "e" * 64)) != base
    assert fingerprint(parts(params={"alpha": 0.7})) != base
    assert fingerprint(parts(inputs={"data": B, "labels": B})) != base
    assert fingerprint(parts(environment={"python": "3.12.0"})) != base


def test_a_whole_number_and_the_same_float_differ_as_documented() -> None:
    assert fingerprint(parts(params={"alpha": 1})) != fingerprint(parts(params={"alpha": 1.0}))


def test_a_float_parameter_given_as_a_whole_number_fingerprints_like_the_float() -> None:
    # runner.spec types run values, so the documented 1 / 1.0 difference never reaches here.
    spec, _ = validate_spec({"parameters": {"alpha": {"type": "float"}}, "nodes": [
        {"id": "a", "component": "python-script@1", "params": {"code": "", "a": "${alpha}"}}]},
        BUILTINS)
    assert spec is not None
    prints = []
    for given_value in (1, 1.0):
        values, errors = check_run_parameters(spec, {"alpha": given_value})
        assert errors == []
        params = resolve_params(spec.node("a"), values)
        prints.append(fingerprint(parts(params=params)))
    assert prints[0] == prints[1]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}])
def test_it_refuses_values_json_cannot_hold(value: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        parts(params={"alpha": value})


def test_it_is_the_same_in_a_fresh_process() -> None:
    given_parts = parts(params={"f": 0.1, "tiny": 1e-300, "big": 2**70, "text": "ü ✓ \u2028",
                                "none": None, "yes": True, "nested": [{"z": 1, "a": [0.5]}]})
    script = ("import json, sys; from runner.fingerprint import fingerprint; "
              "print(fingerprint(json.loads(sys.stdin.read())))")
    # Another hash seed too: nothing may depend on the order of a set or a dict built from one.
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], input=json.dumps(given_parts),
                            capture_output=True, text=True, cwd=REPO, env=env, check=True)
    assert result.stdout.strip() == fingerprint(given_parts)


# --- Why a step was not reused -------------------------------------------------------------


def test_it_says_a_node_runs_for_the_first_time() -> None:
    assert explain_changes(None, parts()) == ["first run of this node"]


def test_it_says_nothing_when_nothing_changed() -> None:
    assert explain_changes(parts(), parts()) == []


def test_it_explains_each_change_in_a_sentence() -> None:
    before = parts()
    after = parts(code_digest="sha256:" + "e" * 64,
                  params={"alpha": 0.7, "layers": [64, 32], "beta": "x", "opts": {"a": 2}},
                  inputs={"data": "sha256:def456def456def456", "extra": A},
                  environment={"python": "3.12.0", "packages": "sha256:" + "d" * 64, "gpu": "h200"})
    assert explain_changes(before, after) == [
        "code changed",
        "parameter alpha changed from 0.5 to 0.7",
        "parameter beta added",
        "parameter name removed",
        'parameter opts changed from {"a": 2, "b": 1} to {"a": 2}',
        f"input data changed (sha256:{'a' * 12}… -> sha256:def456def456…)",
        "input extra added",
        "input labels removed",
        "environment changed: gpu, python",
    ]


def test_it_counts_a_whole_number_becoming_a_float_as_a_change() -> None:
    assert explain_changes(parts(params={"n": 1}), parts(params={"n": 1.0})) == [
        "parameter n changed from 1 to 1.0"]


def test_it_reads_parts_stored_without_some_sections() -> None:
    assert explain_changes({"code": "sha256:" + "c" * 64}, parts()) == [
        "parameter alpha added", "parameter layers added", "parameter name added",
        "parameter opts added", "input data added", "input labels added",
        "environment changed: packages, python"]


def test_it_clips_long_values_and_short_digests_stay_whole() -> None:
    before = parts(params={"text": "x" * 100}, inputs={"data": "abc"})
    after = parts(params={"text": "y"}, inputs={"data": "abd"})
    assert explain_changes(before, after) == [
        f'parameter text changed from "{"x" * 38}… to "y"',
        "input data changed (abc -> abd)",
    ]


# --- Invariance under layout (docs/reliability.md R14) ---------------------------------------

PARAMETERS = {"alpha": {"type": "float", "default": 0.5}, "n": {"type": "int", "default": 3},
              "w": {"type": "string", "default": "hi"}}
param_values = st.recursive(
    st.sampled_from(["${alpha}", "${n}", "n=${n}", "$${w}", "${w}!", "plain"])
    | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False) | st.booleans(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "c"]), children, max_size=3),
    max_leaves=8,
)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """One pipeline written twice: nodes and edges in other orders, nodes moved and relabelled."""
    count = draw(st.integers(1, 6))
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    nodes = []
    for j in range(count):
        params = draw(st.dictionaries(st.sampled_from(["x", "y", "z"]), param_values, max_size=3))
        nodes.append({
            "id": f"s{j}", "component": "python-script@1", "params": {"code": "", **params},
            "ports": {"inputs": [{"name": f"in{i}"} for i, k in chosen if k == j],
                      "outputs": [{"name": "out"}]},
        })
    edges = [{"from": f"s{i}.out", "to": f"s{j}.in{i}"} for i, j in chosen]

    def layout() -> dict[str, Any]:
        placed = [{**node, "position": {"x": draw(st.integers(0, 2000)),
                                        "y": draw(st.floats(-1e3, 1e3))},
                   "label": draw(st.text(max_size=10))} for node in nodes]
        return {"parameters": PARAMETERS, "nodes": draw(st.permutations(placed)),
                "edges": draw(st.permutations(edges))}

    return layout(), layout()


def fingerprints(spec: Spec, run_values: dict[str, Any]) -> dict[str, str]:
    values, errors = check_run_parameters(spec, run_values)
    assert errors == []
    result = {}
    for node in spec.nodes:
        # Stand-ins for the digests of the upstream outputs each input receives.
        inputs = {port: "sha256:" + hashlib.sha256(f"{src}.{out}".encode()).hexdigest()
                  for port, (src, out) in spec.inputs_of(node.id).items()}
        result[node.id] = fingerprint(fingerprint_parts(
            code_digest=BUILTINS[node.component].code_digest,
            params=resolve_params(node, values), inputs=inputs,
            environment={"python": "3.11"}))
    return result


@settings(max_examples=100)
@given(layouts(), st.fixed_dictionaries({}, optional={"alpha": st.floats(-10, 10),
                                                      "n": st.integers(), "w": st.text()}))
def test_fingerprints_do_not_depend_on_node_order_position_or_label(
    documents: tuple[dict[str, Any], dict[str, Any]], run_values: dict[str, Any]
) -> None:
    (first, errors_1), (second, errors_2) = (validate_spec(d, BUILTINS) for d in documents)
    assert errors_1 == errors_2 == [] and first is not None and second is not None
    for node in first.nodes:
        assert resolve_params(node, check_run_parameters(first, run_values)[0]) == \
            resolve_params(second.node(node.id), check_run_parameters(second, run_values)[0])
    assert fingerprints(first, run_values) == fingerprints(second, run_values)
