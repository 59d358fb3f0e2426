"""The palette: built-in components and the workspace's registered ones."""

from pipelines_ui.pipelines.models import Pipeline

COMPONENT = {
    "name": "normalize", "title": "Normalize", "category": "Data",
    "inputs": [{"name": "table", "type": "table"}],
    "outputs": [{"name": "table", "type": "table"}],
    "params_schema": {"type": "object", "properties": {"scale": {"type": "number"}}},
    "files": {"main.py": "print('normalizing')\n"},
}


def test_the_palette_lists_built_ins_with_ports_and_schemas(client_for, viewer):
    rows = client_for(viewer).get("/api/components/").json()["results"]
    builtin = next(r for r in rows if r["key"] == "python-script@1")
    assert builtin["builtin"] is True and builtin["workspace"] is None
    assert "properties" in builtin["params_schema"] and builtin["dynamic_ports"] is True


def test_registering_again_makes_the_next_version(client_for, owner, workspace):
    client = client_for(owner)
    first = client.post("/api/components/", COMPONENT, format="json")
    assert first.status_code == 201 and first.json()["key"] == "normalize@1"
    second = client.post("/api/components/", {**COMPONENT, "title": "Normalize v2"},
                         format="json")
    assert second.json()["key"] == "normalize@2"
    keys = [r["key"] for r in client.get("/api/components/").json()["results"]]
    assert {"python-script@1", "normalize@1", "normalize@2"} <= set(keys)


def test_a_registered_component_can_be_used_in_a_spec(client_for, owner, workspace,
                                                       local_target):
    client = client_for(owner)
    client.post("/api/components/", {**COMPONENT, "inputs": []}, format="json")
    spec = {"nodes": [{"id": "n", "component": "normalize@1", "params": {"scale": 2}}]}
    pipeline = Pipeline.objects.create(workspace=workspace, name="uses it", spec=spec)
    assert client.post(f"/api/pipelines/{pipeline.pk}/validate/", {}, format="json").json()[
        "valid"] is True


def test_a_bad_params_schema_is_a_400(client_for, owner, workspace):
    response = client_for(owner).post(
        "/api/components/", {**COMPONENT, "params_schema": {"type": "banana"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "params_schema"


def test_bad_ports_and_built_in_names_are_refused(client_for, owner, workspace):
    client = client_for(owner)
    response = client.post("/api/components/", {**COMPONENT, "outputs": [
        {"name": "x", "type": "spreadsheet"}]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith("outputs")
    response = client.post("/api/components/", {**COMPONENT, "name": "python-script"},
                           format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"


def test_a_viewer_cannot_register(client_for, viewer, workspace):
    assert client_for(viewer).post("/api/components/", COMPONENT, format="json"
                                   ).status_code == 403
