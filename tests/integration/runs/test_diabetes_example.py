"""The seeded "Diabetes regression" example end to end on a real worker: prepare, split, AutoML
and ridge side by side, evaluate both, register the better model, deploy it, score rows with
it over HTTP; a second run reuses every step and registers nothing new."""

import copy
import json
import re
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_diabetes

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.registry.models import ModelVersion
from pipelines_ui.runs.engine import submit_run
from pipelines_ui.services import DIABETES_SPEC
from tests.integration.runs.test_engine import finished, steps

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DOCS = Path(__file__).resolve().parents[3] / "docs" / "components.md"


def on_target(spec: dict, target: str) -> dict:
    spec = copy.deepcopy(spec)
    for node in spec["nodes"]:
        node["compute"] = target
    return spec


def test_the_documented_example_is_the_seeded_one():
    section = DOCS.read_text().split("## Example: diabetes regression")[1]
    documented = json.loads(re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1))
    seeded = copy.deepcopy(DIABETES_SPEC)
    for node in seeded["nodes"]:
        node.pop("position")
    assert documented == seeded


def test_the_example_registers_and_deploys_the_better_model_which_scores_rows(
        engine, workspace, target, owner):
    pipeline = Pipeline.objects.create(workspace=workspace, name="Diabetes regression",
                                       spec=on_target(DIABETES_SPEC, target.name))
    run = finished(submit_run(pipeline, parameters={"automl_budget_s": 3}, user=owner),
                   timeout=240)
    by_node = steps(run)
    assert run.status == "succeeded", {n: (s.state, s.error) for n, s in by_node.items()}

    version = ModelVersion.objects.select_related("model", "artifact").get()
    assert (version.model.name, version.number, version.is_deployed) == ("diabetes", 1, True)
    assert version.step_run == by_node["register"] and version.created_by == owner
    assert version.artifact.digest == by_node["compare"].outputs["best"]
    comparison = _artifact_json(by_node["compare"].outputs["comparison"], "comparison.json")
    assert version.metrics["rmse"] == pytest.approx(comparison["scores"][comparison["best"]])
    assert version.metrics["r2"] > 0.2

    _token, key = ApiToken.issue(workspace, owner, "scoring", ["read"])
    listed = httpx.get(f"{engine.url}/api/models/diabetes/versions/1/",
                       headers={"Authorization": f"Token {key}"}).json()
    assert (listed["run"], listed["node"], listed["deployed"]) == (run.pk, "register", True)
    data = load_diabetes()
    names = [str(n) for n in data.feature_names]
    rows = [dict(zip(names, data.data[0], strict=True)), list(data.data[1])]
    response = httpx.post(f"{engine.url}/api/models/diabetes/versions/1/score",
                          json={"rows": rows}, headers={"Authorization": f"Token {key}"},
                          timeout=30)
    assert response.status_code == 200, response.text
    model = joblib.load(_artifact_path(version.artifact.digest) / "model.joblib")
    assert response.json()["predictions"] == pytest.approx(
        model.predict(data.data[:2]).tolist())
    bad = httpx.post(f"{engine.url}/api/models/diabetes/versions/1/score",
                     json={"rows": [{"age": 1}]}, headers={"Authorization": f"Token {key}"})
    assert bad.status_code == 400 and "row 0 lacks sex, bmi" in bad.json()["detail"]

    second = finished(submit_run(pipeline, parameters={"automl_budget_s": 3}, user=owner))
    assert {s.state for s in second.steps.all()} == {"reused"}
    assert ModelVersion.objects.count() == 1


def _artifact_path(digest: str) -> Path:
    from django.conf import settings

    from runner.datastore import Datastore

    return Path(Datastore(settings.DATASTORE_URL).artifact_uri(digest).removeprefix("file://"))


def _artifact_json(digest: str, name: str) -> dict:
    return json.loads((_artifact_path(digest) / name).read_text())
