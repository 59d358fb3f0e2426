"""Building a pipeline in code: the spec it makes, and what it refuses (no server needed)."""

import pytest

from runner.datastore import tree_digest
from runner.sdk import (
    ComponentStep,
    Pipeline,
    PipelineData,
    PipelineError,
    PipelineParameter,
    PythonScriptStep,
    snapshot_digest,
)


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("a.py", "b.py", "c.py", "d.py"):
        (folder / name).write_text(f"print({name!r})\n")
    return folder


def diamond(source):
    a_out, b_out, c_out = PipelineData("a_out"), PipelineData("b_out", type="table"), \
        PipelineData("c_out")
    alpha = PipelineParameter("alpha", default=0.5)
    PythonScriptStep("a", "a.py", source_directory=source, outputs=[a_out])
    PythonScriptStep("b", "b.py", source_directory=source, inputs=[a_out], outputs=[b_out],
                     params={"alpha": alpha})
    PythonScriptStep("c", "c.py", source_directory=source, inputs={"x": a_out},
                     outputs=[c_out], arguments=["--mode", "fast"], compute_target="gpu")
    d = PythonScriptStep("d", "d.py", source_directory=source, inputs=[b_out, c_out],
                         allow_reuse=False)
    return Pipeline(None, [d], name="diamond")


def test_a_diamond_in_code_is_one_spec_with_edges_from_its_data(source):
    spec = diamond(source).to_spec()
    assert [n["id"] for n in spec["nodes"]] == ["a", "b", "c", "d"]
    assert spec["edges"] == [{"from": "a.a_out", "to": "b.a_out"},
                             {"from": "a.a_out", "to": "c.x"},
                             {"from": "b.b_out", "to": "d.b_out"},
                             {"from": "c.c_out", "to": "d.c_out"}]
    assert spec["parameters"] == {"alpha": {"type": "float", "default": 0.5,
                                            "description": ""}}
    b, c, d = spec["nodes"][1:]
    assert b["params"] == {"alpha": "${alpha}", "source": tree_digest(source)[0],
                           "script": "b.py", "arguments": []}
    assert b["ports"]["outputs"] == [{"name": "b_out", "type": "table"}]
    assert (c["compute"], c["params"]["arguments"], c["ports"]["inputs"][0]["name"]) == (
        "gpu", ["--mode", "fast"], "x")
    assert d["allow_reuse"] is False and "position" not in d


def test_the_servers_validator_accepts_it_here(source):
    assert diamond(source).validate() == []


def test_local_validation_names_the_node_and_field(source):
    bad = PythonScriptStep("bad", "a.py", source_directory=source, retries=99)
    unknown = ComponentStep("other", "no-such@1")
    errors = Pipeline(None, [bad, unknown], name="p").validate()
    fields = {(e["node"], e["field"]) for e in errors}
    assert ("bad", "retries") in fields and ("other", "component") in fields


def test_parameters_take_their_type_from_the_default():
    assert [PipelineParameter(n, v).type for n, v in
            (("a", True), ("b", 3), ("c", 0.1), ("d", "x"))] == ["bool", "int", "float",
                                                                  "string"]
    assert PipelineParameter("e", type="int").to_dict() == {"type": "int", "description": ""}
    assert f"--e={PipelineParameter('e', 1)}" == "--e=${e}"
    with pytest.raises(PipelineError, match="has no default: give it a type"):
        PipelineParameter("f")


@pytest.mark.parametrize("build, says", [
    (lambda s, d: PythonScriptStep("x", "missing.py", source_directory=s),
     "'missing.py' is not in"),
    (lambda s, d: PythonScriptStep("x", code="1", source_directory=s), "one of them"),
    (lambda s, d: PythonScriptStep("x", code="1", arguments=[PipelineParameter("n", 1)]),
     'like f"--n={n}"'),
    (lambda s, d: PythonScriptStep("x", code="1", arguments=[d]), "context.input_path('d')"),
    (lambda s, d: ComponentStep("x", "train-sklearn"), "train-sklearn@1"),
    (lambda s, d: PythonScriptStep("x", code="1", inputs=["d"]), "must be PipelineData"),
])
def test_a_step_written_wrong_says_what_to_change(source, build, says):
    with pytest.raises(PipelineError) as refused:
        build(source, PipelineData("d"))
    assert says in str(refused.value)


def test_data_must_be_written_by_exactly_one_step():
    data = PipelineData("d")
    PythonScriptStep("one", code="1", outputs=[data])
    with pytest.raises(PipelineError, match="already an output of step 'one'"):
        PythonScriptStep("two", code="1", outputs=[data])
    orphan = PythonScriptStep("reader", code="1", inputs=[PipelineData("nobody")])
    with pytest.raises(PipelineError, match="which no step writes"):
        Pipeline(None, [orphan], name="p")


def test_two_steps_of_one_name_are_refused():
    with pytest.raises(PipelineError, match="two steps are named 'same'"):
        Pipeline(None, [PythonScriptStep("same", code="1"), PythonScriptStep("same", code="2")],
                 name="p")


def test_a_snapshot_digest_ignores_caches_and_follows_the_content(source):
    before = snapshot_digest(source)
    assert before == tree_digest(source)[0]
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert snapshot_digest(source) == before != tree_digest(source)[0]
    (source / "a.py").write_text("print('changed')\n")
    assert snapshot_digest(source) != before


def test_a_spec_file_is_the_pipeline_as_saved(tmp_path):
    (tmp_path / "spec.json").write_text('{"parameters": {}, "nodes": [], "edges": []}')
    assert Pipeline.from_file(None, tmp_path / "spec.json", name="p").to_spec() == {
        "parameters": {}, "nodes": [], "edges": []}
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PipelineError, match="cannot read the spec"):
        Pipeline.from_file(None, tmp_path / "broken.json", name="p")
