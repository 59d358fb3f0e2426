"""POST /api/models/{name}/versions/{v}/score: rows in, one prediction per row out."""

import json
import os

import joblib
import psutil
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

from pipelines_ui.data.models import Artifact
from pipelines_ui.registry import scoring
from pipelines_ui.registry.services import deploy_version, register_model_version
from runner.datastore import Datastore

URL = "/api/models/diabetes/versions/1/score"
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.fixture
def fitted():
    data = load_diabetes()
    return LinearRegression().fit(data.data, data.target), data.data


def publish_model(tmp_path, workspace, estimator, features=FEATURES) -> Artifact:
    """A model artifact as train-sklearn writes it, in a datastore of its own."""
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(estimator, folder / "model.joblib")
    (folder / "settings.json").write_text(json.dumps(
        {"estimator": "linear_regression", "task": "regression", "feature_columns": features}))
    ref = Datastore(f"file://{tmp_path / 'store'}").publish(folder)
    return Artifact.objects.create(workspace=workspace, digest=ref["digest"], uri=ref["uri"],
                                   size=ref["size"])


@pytest.fixture
def deployed(tmp_path, workspace, fitted):
    version = register_model_version(workspace.pk, "diabetes",
                                     artifact=publish_model(tmp_path, workspace, fitted[0]))
    return deploy_version(version)


def test_rows_as_objects_or_lists_get_the_models_predictions(client_for, viewer, deployed,
                                                             fitted):
    model, features = fitted
    rows = [dict(zip(FEATURES, features[0], strict=True)), list(features[1])]
    response = client_for(viewer).post(URL, {"rows": rows}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["model"], body["version"]) == ("diabetes", 1)
    assert body["predictions"] == pytest.approx(model.predict(features[:2]).tolist())


def test_a_token_scores(token_client, owner, workspace, deployed, fitted):
    client = token_client(owner, workspace, scopes=["read"])
    response = client.post(URL, {"rows": [list(fitted[1][5])]}, format="json")
    assert response.status_code == 200
    assert response.json()["predictions"] == pytest.approx(
        fitted[0].predict(fitted[1][5:6]).tolist())


@pytest.mark.parametrize(("rows", "message"), [
    ([{"age": 1}], "row 0 lacks sex, bmi, bp, s1, s2, s3, s4, s5, s6; the model takes age, "),
    ([[0] * 10, {**dict.fromkeys(FEATURES, 0), "bmii": 1}],
     "row 1 has unknown columns bmii; the model takes age"),
    ([[0] * 9], "row 0 has 9 values; the model takes 10: age, sex, "),
    ([[0] * 9 + ["high"]], "row 0, column 's6': \"high\" is not a number"),
    ([[0] * 9 + [True]], "row 0, column 's6': true is not a number"),
    ([[0] * 9 + [None]], "row 0, column 's6': null is not a number"),
    (["0,1,2"], "row 0 is neither an object nor a list"),
    ([], "rows must be a non-empty list"),
    ({"age": 1}, "rows must be a non-empty list"),
    ([[0] * 10] * (scoring.MAX_ROWS + 1), f"{scoring.MAX_ROWS + 1} rows is more than the limit "
                                          f"of {scoring.MAX_ROWS} per request"),
])
def test_malformed_rows_are_a_400_naming_the_problem(client_for, owner, deployed, rows,
                                                     message):
    response = client_for(owner).post(URL, {"rows": rows}, format="json")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "rows" and error["message"].startswith(message), error


def test_a_body_without_rows_is_a_400_naming_the_field(client_for, owner, deployed):
    for body, field in (({}, "rows"), ({"row": [[0] * 10]}, "row")):
        response = client_for(owner).post(URL, body, format="json")
        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == [field]


def test_a_version_not_deployed_is_a_404(client_for, owner, tmp_path, workspace, fitted):
    register_model_version(workspace.pk, "diabetes",
                           artifact=publish_model(tmp_path, workspace, fitted[0]))
    response = client_for(owner).post(URL, {"rows": [[0] * 10]}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"] == "Model diabetes version 1 is not deployed."
    assert client_for(owner).post("/api/models/diabetes/versions/2/score",
                                  {"rows": [[0] * 10]}, format="json").status_code == 404


def test_another_workspaces_model_is_a_404(client_for, outsider, deployed):
    response = client_for(outsider).post(URL, {"rows": [[0] * 10]}, format="json")
    assert response.status_code == 404


@pytest.fixture
def fresh_processes():
    scoring.stop_all()
    yield
    scoring.stop_all()


def test_a_model_predicts_in_one_process_of_its_own_without_the_servers_secrets(
        client_for, owner, deployed, fresh_processes, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://app:db-password@db/app")
    client = client_for(owner)
    for _ in range(3):
        assert client.post(URL, {"rows": [[0] * 10]}, format="json").status_code == 200
    (model,) = scoring._cache.values()
    process = psutil.Process(model.process.pid)
    assert process.pid != os.getpid() and "runner.scoring" in process.cmdline()
    seen = process.environ()
    assert not {"DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL", "REDIS_URL"} & set(seen)
    assert "db-password" not in json.dumps(seen)


def test_a_model_that_cannot_be_loaded_is_a_409_and_leaves_no_process(
        client_for, owner, tmp_path, workspace, fresh_processes):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"not a pickle")
    (folder / "settings.json").write_text(json.dumps({"feature_columns": FEATURES}))
    ref = Datastore(f"file://{tmp_path / 'store'}").publish(folder)
    artifact = Artifact.objects.create(workspace=workspace, digest=ref["digest"], uri=ref["uri"],
                                       size=ref["size"])
    deploy_version(register_model_version(workspace.pk, "diabetes", artifact=artifact))
    children = {p.pid for p in psutil.Process().children()}
    response = client_for(owner).post(URL, {"rows": [[0] * 10]}, format="json")
    assert response.status_code == 409
    assert "the model cannot be loaded" in response.json()["detail"]
    assert not scoring._cache
    assert {p.pid for p in psutil.Process().children() if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE} <= children


def test_a_model_gone_from_its_datastore_is_a_409(client_for, owner, tmp_path, workspace):
    artifact = Artifact.objects.create(workspace=workspace, digest="sha256:" + "12" * 32,
                                       uri=f"file://{tmp_path}/store/artifacts/{'12' * 32}")
    deploy_version(register_model_version(workspace.pk, "diabetes", artifact=artifact))
    scoring.stop_all()
    response = client_for(owner).post(URL, {"rows": [[0] * 10]}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == (  # named by digest, not by where it was (S16)
        f"Model diabetes version 1: the model's files are not in the datastore (artifact "
        f"{artifact.digest})")
